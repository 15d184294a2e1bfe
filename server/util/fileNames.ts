/**
 * File names that are not valid UTF-8. Linux allows any bytes in a name but '/' and NUL, and Node
 * decodes names and command-line arguments as UTF-8, turning each invalid byte into U+FFFD, so such
 * a file can be listed but not opened ("file not found"). As Python does (PEP 383,
 * "surrogateescape"), we decode an invalid byte b to the lone surrogate U+DC00+b, which no valid
 * UTF-8 produces, keep paths as strings everywhere (joins, relative paths, JSON: `\udcff`), and turn
 * the surrogates back into their bytes only where a path is handed to the file system (`fsPath`).
 */
import { readFileSync } from 'fs';

const LONE_ESCAPE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

/** A file name or path read as bytes (readdir with encoding 'buffer', /proc/self/cmdline). */
export function decodeFileName(bytes: Buffer): string {
  const text = bytes.toString('utf8');
  if (!text.includes('\uFFFD') || Buffer.from(text, 'utf8').equals(bytes)) return text;
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const n = utf8SequenceLength(bytes, i);
    if (n > 0) {
      out += bytes.toString('utf8', i, i + n);
      i += n;
    } else out += String.fromCharCode(0xdc00 + bytes[i++]);
  }
  return out;
}

/** The path to give to `fs`: the string itself, or its exact bytes when it carries escaped bytes. */
export function fsPath(p: string): string | Buffer {
  if (!LONE_ESCAPE.test(p)) return p;
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    const high = i > 0 && p.charCodeAt(i - 1) >= 0xd800 && p.charCodeAt(i - 1) <= 0xdbff;
    if (c >= 0xdc80 && c <= 0xdcff && !high) {
      parts.push(Buffer.from(p.slice(start, i), 'utf8'), Buffer.of(c - 0xdc00));
      start = i + 1;
    }
  }
  parts.push(Buffer.from(p.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

/** Whether a path carries bytes that are not UTF-8 (and so must reach `fs` as a Buffer). */
export function hasRawBytes(p: string): boolean {
  return LONE_ESCAPE.test(p);
}

/** A path for messages: escaped bytes shown as \xNN (printed as is they would become U+FFFD). */
export function displayPath(p: string): string {
  return hasRawBytes(p)
    ? p.replace(new RegExp(LONE_ESCAPE.source, 'g'), c => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16)}`)
    : p;
}

/**
 * The command-line arguments after the script, with any argument that was not valid UTF-8 taken
 * from /proc/self/cmdline (Linux) as bytes, so a file named in it can be opened. Elsewhere, or when
 * /proc cannot be read, Node's decoding is kept.
 */
export function commandLineArgs(argv: string[] = process.argv): string[] {
  const args = argv.slice(2);
  if (!args.some(a => a.includes('\uFFFD'))) return args;
  let raw: Buffer[];
  try {
    const bytes = readFileSync('/proc/self/cmdline');
    raw = [];
    for (let start = 0, end = bytes.indexOf(0); end >= 0; start = end + 1, end = bytes.indexOf(0, start))
      raw.push(bytes.subarray(start, end));
  } catch {
    return args;
  }
  // Node's own options (--import, …) come before the script; the arguments are the last ones.
  const tail = raw.slice(raw.length - args.length);
  return args.map((a, i) =>
    tail.length === args.length && tail[i].toString('utf8') === a ? decodeFileName(tail[i]) : a,
  );
}

/** Length of the valid UTF-8 sequence at `i` (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF), 0 if invalid. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const b0 = b[i];
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 >= 0xe0 && b0 <= 0xef) {
    const ok1 = b0 === 0xe0 ? cont(1, 0xa0) : b0 === 0xed ? cont(1, 0x80, 0x9f) : cont(1);
    return ok1 && cont(2) ? 3 : 0;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    const ok1 = b0 === 0xf0 ? cont(1, 0x90) : b0 === 0xf4 ? cont(1, 0x80, 0x8f) : cont(1);
    return ok1 && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}
