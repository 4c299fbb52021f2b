/** Caption words for benchmark vocabularies and queries (lower-case, as the official vocabularies). */
export const BENCH_WORDS: readonly string[] = (
  "a an the two three several man woman child boy girl people person group dog cat horse bird " +
  "cow sheep elephant giraffe zebra bear car bus truck train bicycle motorcycle boat plane street " +
  "road sidewalk building house kitchen table chair bed room window door wall field grass tree " +
  "beach water ocean river lake snow mountain sky cloud park city food pizza sandwich plate bowl " +
  "cake fruit banana apple orange shirt hat jacket red blue green white black yellow brown large " +
  "small young old tall sitting standing walking running riding holding playing eating looking " +
  "wearing carrying flying jumping on in at with of near next to front behind under over top " +
  "while and its their his her is are some many other"
).split(" ");
