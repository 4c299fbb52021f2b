/**
 * NLTK 3.8.1's `word_tokenize(text, preserve_line=True)`: the NLTKWordTokenizer (an improved
 * Penn Treebank tokenizer) without sentence splitting. The official vocabularies of Flickr30K,
 * MS-COCO and CC152K were built from `word_tokenize(caption.lower())`, so a caption must split
 * into exactly the tokens NLTK gives or its words fall back to `<unk>`.
 *
 * The tokenizer is a fixed sequence of regular-expression substitutions followed by a split on
 * whitespace. Python's `re` and JavaScript's RegExp scan and replace alike (leftmost match,
 * non-overlapping, left to right), but their character classes differ: on `str` patterns Python's
 * `\w`, `\d`, `\s` and `\b` are Unicode-aware and `$` also matches before a final newline. The
 * patterns below therefore spell those out instead of using JavaScript's ASCII shorthands.
 */

/** Python's `\w` on str patterns: letters, numbers and the underscore. */
const WORD = String.raw`[\p{L}\p{N}_]`;
/** Python's `\s` and the separators of `str.split()` (note \x1c-\x1f and \x85, but not \ufeff). */
const SPACE = String.raw`[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]`;
/** Python's `\b`: a change between a word character and anything else. */
const BOUNDARY = `(?:(?<=${WORD})(?!${WORD})|(?<!${WORD})(?=${WORD}))`;
/** Python's `$` without MULTILINE: the end, or just before a newline that ends the string. */
const END = String.raw`(?=\n?$)`;

type Rule = readonly [RegExp, string];

const rule = (pattern: string, replacement: string, flags = ""): Rule => [new RegExp(pattern, `gu${flags}`), replacement];

const STARTING_QUOTES: readonly Rule[] = [
  rule("([«“‘„]|`+)", " $1 "),
  rule('^"', "``"),
  rule("(``)", " $1 "),
  rule(`([ ([{<])("|'')`, "$1 `` "),
  // A quote before a one-letter word opens a quotation, unless the letter is a clitic ('m, 't, ...).
  rule(`(')(?!re|ve|ll|m|t|s|d|n)(${WORD})${BOUNDARY}`, "$1 $2", "i"),
];

const PUNCTUATION: readonly Rule[] = [
  // The final period, also when closing quotes and brackets follow it. It runs twice (here and
  // below, with a narrower class and a different spacing), as NLTK does.
  rule(String.raw`([^.])(\.)([\])}>"'»”’ ]*)${SPACE}*${END}`, "$1 $2 $3 "),
  rule(String.raw`([:,])([^\p{Nd}])`, " $1 $2"),
  rule(`([:,])${END}`, " $1 "),
  rule(String.raw`\.{2,}`, " $& "),
  rule("[;@#$%&]", " $& "),
  rule(String.raw`([^.])(\.)([\])}>"']*)${SPACE}*${END}`, "$1 $2$3 "),
  rule("[?!]", " $& "),
  rule("([^'])' ", "$1 ' "),
  rule(String.raw`\*`, " $& "),
];

const PARENS_BRACKETS: Rule = rule(String.raw`[\][(){}<>]`, " $& ");

/** Penn Treebank names of brackets, used only when `convertParentheses` is set. */
const CONVERT_PARENTHESES: readonly Rule[] = [
  rule(String.raw`\(`, "-LRB-"),
  rule(String.raw`\)`, "-RRB-"),
  rule(String.raw`\[`, "-LSB-"),
  rule(String.raw`\]`, "-RSB-"),
  rule(String.raw`\{`, "-LCB-"),
  rule(String.raw`\}`, "-RCB-"),
];

const DOUBLE_DASHES: Rule = rule("--", " -- ");

const ENDING_QUOTES: readonly Rule[] = [
  rule("([»”’])", " $1 "),
  rule("''", " '' "),
  rule('"', " '' "),
  rule("([^' ])('[sS]|'[mM]|'[dD]|') ", "$1 $2 "),
  rule("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "$1 $2 "),
];

/** Robert MacIntyre's contractions: words split into two tokens ("cannot" -> "can", "not"). */
const CONTRACTIONS2: readonly Rule[] = [
  ["can", "not"],
  ["d", "'ye"],
  ["gim", "me"],
  ["gon", "na"],
  ["got", "ta"],
  ["lem", "me"],
  ["more", "'n"],
].map(([a, b]) => rule(`${BOUNDARY}(${a})(${b})${BOUNDARY}`, " $1 $2 ", "i"));

/** "wanna" splits only before whitespace, so that "wannabe" stays whole. */
const WANNA: Rule = rule(`${BOUNDARY}(wan)(na)(?=${SPACE})`, " $1 $2 ", "i");

const CONTRACTIONS3: readonly Rule[] = [
  rule(` ('t)(is)${BOUNDARY}`, " $1 $2 ", "i"),
  rule(` ('t)(was)${BOUNDARY}`, " $1 $2 ", "i"),
];

const SPLIT = new RegExp(`${SPACE}+`, "u");

function applyAll(text: string, rules: readonly Rule[]): string {
  for (const [re, sub] of rules) text = text.replace(re, sub);
  return text;
}

export interface WordTokenizeOptions {
  /** Replace brackets by -LRB-, -RRB-, -LSB-, -RSB-, -LCB-, -RCB- (NLTK's `convert_parentheses`). */
  convertParentheses: boolean;
}

export const WORD_TOKENIZE_DEFAULTS: WordTokenizeOptions = { convertParentheses: false };

/**
 * NLTK's `word_tokenize(text, preserve_line=True)`, i.e. `NLTKWordTokenizer().tokenize(text)`.
 * No sentence splitting: a period is split off only at the end of the text.
 */
export function wordTokenize(text: string, options: Partial<WordTokenizeOptions> = {}): string[] {
  const { convertParentheses } = { ...WORD_TOKENIZE_DEFAULTS, ...options };
  text = applyAll(text, STARTING_QUOTES);
  text = applyAll(text, PUNCTUATION);
  text = applyAll(text, [PARENS_BRACKETS]);
  if (convertParentheses) text = applyAll(text, CONVERT_PARENTHESES);
  text = applyAll(text, [DOUBLE_DASHES]);
  // The ending-quote and contraction rules look for a space on either side of a token.
  text = ` ${text} `;
  text = applyAll(text, ENDING_QUOTES);
  text = applyAll(text, CONTRACTIONS2);
  text = applyAll(text, [WANNA]);
  text = applyAll(text, CONTRACTIONS3);
  return text.split(SPLIT).filter((t) => t.length > 0);
}

/**
 * The tokens of a caption as the official vocabulary saw them: `word_tokenize(caption.lower())`
 * (`data.py`'s get_dataset and `vocab.py`'s build_vocab).
 */
export function tokenizeCaption(caption: string): string[] {
  return wordTokenize(caption.toLowerCase());
}
