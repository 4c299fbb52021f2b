import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { tokenizeCaption, wordTokenize } from "../../../shared/text/tokenize";
import { REFERENCE_DIR } from "../../support";

interface TokenizeFixture {
  tokenizer: string;
  cases: Array<{ text: string; tokens: string[] }>;
}

const FIXTURE = resolve(REFERENCE_DIR, "tokenize/nltk-word-tokenize.json");
const fixture = JSON.parse(readFileSync(FIXTURE, "utf8")) as TokenizeFixture;

describe("NLTK reference captions", () => {
  test("the fixture holds cases", () => {
    expect(Array.isArray(fixture.cases)).toBe(true);
    expect(fixture.cases.length).toBeGreaterThan(0);
  });

  // The fixture's tokens are those of the lower-cased text, as the official vocabulary saw them.
  for (const [i, c] of fixture.cases.entries()) {
    test(`case ${i}: ${JSON.stringify(c.text)}`, () => {
      expect(tokenizeCaption(c.text)).toEqual(c.tokens);
      expect(wordTokenize(c.text.toLowerCase())).toEqual(c.tokens);
    });
  }
});

/**
 * Rules the reference captions do not reach. Expected tokens are those of NLTK 3.8.1's
 * NLTKWordTokenizer().tokenize(text) (equal to word_tokenize(text, preserve_line=True)).
 */
const RULES: Array<[string, string, string[]]> = [
  ["contractions: cannot, gonna, gotta", "I cannot believe you're gonna leave, gotta go.", ["I", "can", "not", "believe", "you", "'re", "gon", "na", "leave", ",", "got", "ta", "go", "."]],
  ["contractions: gimme, lemme", "Gimme that, lemme see it!", ["Gim", "me", "that", ",", "lem", "me", "see", "it", "!"]],
  ["wanna splits only before whitespace", "I wanna go but he's a wannabe", ["I", "wan", "na", "go", "but", "he", "'s", "a", "wannabe"]],
  ["contractions: d'ye, more'n", "D'ye know more'n me?", ["D", "'ye", "know", "more", "'n", "me", "?"]],
  ["contractions3: 'tis only after a space", "'Tis the season and 'twas fun", ["'T", "is", "the", "season", "and", "'t", "was", "fun"]],
  ["a word boundary is Unicode-aware", "écannot stop", ["écannot", "stop"]],
  ["commas and colons before digits stay", "A crowd of 1,000 people paid 3,36 euros each: wow,", ["A", "crowd", "of", "1,000", "people", "paid", "3,36", "euros", "each", ":", "wow", ","]],
  ["a trailing colon or comma", "Note: the end,", ["Note", ":", "the", "end", ","]],
  ["ellipses of two or more periods", "Wait...what?..", ["Wait", "...", "what", "?", ".."]],
  ["double dashes, attached or not", "A dog--running fast -- jumps.", ["A", "dog", "--", "running", "fast", "--", "jumps", "."]],
  ["an attached em dash is not split in 3.8.1", "Steps—captured on camera", ["Steps—captured", "on", "camera"]],
  ["double quotes open and close", "\"Hi\" she said, ``ok'' ''fine''", ["``", "Hi", "''", "she", "said", ",", "``", "ok", "''", "``", "fine", "''"]],
  ["typographic quotes and guillemets", "“Quoted” and ‘single’ and «guillemets» here", ["“", "Quoted", "”", "and", "‘", "single", "’", "and", "«", "guillemets", "»", "here"]],
  ["a quote before a one-letter word", "He said 'a dog' was there", ["He", "said", "'", "a", "dog", "'", "was", "there"]],
  ["rock 'n' roll keeps its clitic", "rock 'n' roll", ["rock", "'n", "'", "roll"]],
  ["a leading quote before a longer word stays", "'ello there ' mate'", ["'ello", "there", "'", "mate", "'"]],
  ["the final period before a typographic closing quote", "he said “stop.”", ["he", "said", "“", "stop", ".", "”"]],
  ["a closing quote right after a clitic", "a t-shirt reading '90's' style", ["a", "t-shirt", "reading", "'90", "'s", "'", "style"]],
  ["the final period inside a bracket", "(A dog runs.)", ["(", "A", "dog", "runs", ".", ")"]],
  ["only the last period is split (no sentence splitting)", "A dog runs. A cat sits.", ["A", "dog", "runs.", "A", "cat", "sits", "."]],
  ["abbreviations: only the very last period goes", "It is 5:30. The U.S.A.", ["It", "is", "5:30.", "The", "U.S.A", "."]],
  ["symbols", "Costs $5 @home #1 at 50% & more*", ["Costs", "$", "5", "@", "home", "#", "1", "at", "50", "%", "&", "more", "*"]],
  ["symbols split from the words they touch", "salt&pepper;fries@home#1 50%off $5 a*b", ["salt", "&", "pepper", ";", "fries", "@", "home", "#", "1", "50", "%", "off", "$", "5", "a", "*", "b"]],
  ["repeated ! and ?", "Wait!!! Really??", ["Wait", "!", "!", "!", "Really", "?", "?"]],
  ["upper-case clitics", "DON'T SHOUT, WE'LL HEAR YOU'RE HERE", ["DO", "N'T", "SHOUT", ",", "WE", "'LL", "HEAR", "YOU", "'RE", "HERE"]],
  ["upper-case 's and n't", "JOHN'S CAR ISN'T RED.", ["JOHN", "'S", "CAR", "IS", "N'T", "RED", "."]],
  ["clitics already apart", "he 'd 'll", ["he", "'d", "'ll"]],
  ["a plural possessive", "The kids' toys", ["The", "kids", "'", "toys"]],
  ["a possessive after a non-ASCII letter", "the café's owner", ["the", "café", "'s", "owner"]],
  ["brackets of every kind", "a man with a toy (a ball) [red] {blue} <green>.", ["a", "man", "with", "a", "toy", "(", "a", "ball", ")", "[", "red", "]", "{", "blue", "}", "<", "green", ">", "."]],
  ["Unicode whitespace and a comma before a final newline", "a\tman\non  the\u00a0bench,\n", ["a", "man", "on", "the", "bench", ","]],
  ["a detached final period", "the end .", ["the", "end", "."]],
  ["empty text", "", []],
  ["blank text", "  \t ", []],
];

describe("NLTKWordTokenizer rules", () => {
  for (const [name, text, tokens] of RULES) {
    test(name, () => {
      expect(wordTokenize(text)).toEqual(tokens);
    });
  }

  test("convertParentheses names brackets as the Penn Treebank does", () => {
    expect(wordTokenize("a man (with) [a] {b} dog", { convertParentheses: true })).toEqual(
      ["a", "man", "-LRB-", "with", "-RRB-", "-LSB-", "a", "-RSB-", "-LCB-", "b", "-RCB-", "dog"],
    );
    expect(wordTokenize("a man (with) dog")).toEqual(["a", "man", "(", "with", ")", "dog"]);
  });

  test("tokenizeCaption lower-cases first, as Python's str.lower does (final sigma included)", () => {
    expect(tokenizeCaption("A Man Can't SWIM.")).toEqual(["a", "man", "ca", "n't", "swim", "."]);
    expect(tokenizeCaption("ΟΔΟΣ ΣΑΣ")).toEqual(["οδος", "σας"]);
  });
});
