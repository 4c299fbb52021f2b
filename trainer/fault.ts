/** Raised for a run that cannot go on (a NaN loss, a checkpoint that does not fit the data). */
export class TrainingFault extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TrainingFault";
  }
}
