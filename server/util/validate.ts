/**
 * Small building blocks for checking untrusted structured input (worker requests, config.json) with
 * valibot, and turning the first problem into one short sentence that names the field. Pure
 * TypeScript with no Node imports (the worker's request schemas, server/requestSchemas.ts, and config.json's).
 */
import * as v from 'valibot';

/** Longest text quoted back in a message; longer strings are cut in the middle. */
export const MAX_QUOTED_CHARS = 120;

/** `text` cut to about `max` characters (head … tail), saying how long it really was. */
export function shorten(text: string, max = MAX_QUOTED_CHARS): string {
  if (text.length <= max) return text;
  const head = Math.ceil(max * 0.6);
  const tail = max - head;
  return `${text.slice(0, head)}…${text.slice(text.length - tail)} (${text.length} characters)`;
}

/** Every whitespace-free run longer than `max` in a message (paths, echoed values) shortened; the whole message capped too. */
export function shortenLongRuns(message: string, max = MAX_QUOTED_CHARS * 2): string {
  const runs = message.replace(/(\S{2,}?)([:;,.)"']*)(?=\s|$)/g, (all, run: string, trailing: string) =>
    run.length > max ? shorten(run, max) + trailing : all,
  );
  return runs.length > max * 8 ? shorten(runs, max * 8) : runs;
}

/** A value as a message shows it: strings quoted and shortened, objects by kind. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(shorten(value));
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value;
}

/** The field an issue is about, as `images[0]` or `overlay.colormap`; `root` for the value itself. */
function fieldOf(issue: v.BaseIssue<unknown>, root: string): string {
  let field = '';
  for (const item of issue.path ?? []) {
    const key = item.key;
    if (typeof key === 'number') field += `[${key}]`;
    else field += field ? `.${shorten(String(key), 40)}` : shorten(String(key), 40);
  }
  return field || root;
}

/** Fallback wording for issues whose schema gave no message of its own. */
const fallbackMessage = (issue: v.BaseIssue<unknown>): string =>
  issue.kind === 'schema' ? `has the wrong type (${show(issue.input)})` : `is not valid (${show(issue.input)})`;

export type Checked<T> = { ok: true; value: T } | { ok: false; field: string; problem: string };

/**
 * Check `input` against `schema`; on failure, the first problem as `field` + `problem` ("must be …, got …").
 * `root` names the value itself (e.g. "params") for problems not inside any field.
 */
export function check<T>(schema: v.GenericSchema<unknown, T>, input: unknown, root: string): Checked<T> {
  const result = v.safeParse(schema, input, { abortEarly: true, message: fallbackMessage });
  if (result.success) return { ok: true, value: result.output };
  const issue = result.issues[0];
  return { ok: false, field: fieldOf(issue, root), problem: shortenLongRuns(issue.message) };
}

// ---- Field builders with our wording ----

/** A non-empty string of at most `maxChars` characters, described as `what` ("a file path"). */
export const text = (what: string, maxChars: number) =>
  v.pipe(
    v.string(i => `must be ${what}, got ${show(i.input)}`),
    v.nonEmpty(`must be ${what}, got an empty string`),
    v.maxLength(maxChars, i => `is ${(i.input as string).length} characters long; at most ${maxChars} are accepted`),
  );

/** An integer in [min, max]. */
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) => {
  const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
  const message = (i: { input: unknown }) => `must be an integer ${range}, got ${show(i.input)}`;
  return v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));
};

/** A finite number in [min, max] (or [min, max) when `maxExclusive`). */
export const num = (min: number, max: number, maxExclusive = false) => {
  const message = (i: { input: unknown }) =>
    `must be a number in [${min}, ${max}${maxExclusive ? ')' : ']'}, got ${show(i.input)}`;
  return v.pipe(
    v.number(message),
    v.minValue(min, message),
    maxExclusive ? v.ltValue(max, message) : v.maxValue(max, message),
  );
};

/** A number > 0 (finite). */
export const positive = () => {
  const message = (i: { input: unknown }) => `must be a number > 0, got ${show(i.input)}`;
  return v.pipe(v.number(message), v.finite(message), v.gtValue(0, message));
};

/** One of `values`. */
export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  v.picklist(values, i => `must be one of ${values.join(', ')}, got ${show(i.input)}`);

export const bool = () => v.boolean(i => `must be true or false, got ${show(i.input)}`);

/**
 * The fields of T's schema, as a compile-time check that they are exactly T's: a field added to T
 * (optional ones too) cannot go unchecked, and the schema cannot check a field T does not have.
 * Usage: `obj(fields<T>()({ ... }))`.
 */
export const fields =
  <T>() =>
  <const E extends Record<keyof T, v.GenericSchema>>(entries: E & Record<Exclude<keyof E, keyof T>, never>): E =>
    entries;

/** An object (not a list) with these fields; others are ignored. */
export const obj = <const E extends v.ObjectEntries>(entries: E) => {
  const notObject = (i: { input: unknown }) => `must be an object, got ${show(i.input)}`;
  return v.pipe(
    v.custom<object>(x => typeof x === 'object' && x !== null && !Array.isArray(x), notObject),
    // valibot reports a missing field with the object's message, and only then with a path.
    v.object(entries, i => (i.path ? 'is missing' : notObject(i))),
  );
};

/** A list of `item`, at most `maxItems` long. */
export const list = <const S extends v.GenericSchema>(item: S, maxItems: number) =>
  v.pipe(
    v.array(item, i => `must be a list, got ${show(i.input)}`),
    v.maxLength(maxItems, i => `has ${(i.input as unknown[]).length} entries; at most ${maxItems} are accepted`),
  );
