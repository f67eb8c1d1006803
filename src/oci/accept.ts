/** Which media types a client said it accepts, from its Accept headers. */
export interface MediaTypeAcceptance {
  /** True when the client accepts `mediaType`: named, matched by a wildcard, or no preference given. */
  accepts(mediaType: string): boolean;
  /** The types the client named, in order, without parameters (empty when it gave no preference). */
  readonly named: readonly string[];
}

/** Accepts everything: for callers that are not answering a client. */
export const acceptAnything: MediaTypeAcceptance = { accepts: () => true, named: [] };

/** Parsed single Accept headers: clients send the same few on every request. */
const parsed = new Map<string, MediaTypeAcceptance>();
const maxParsed = 256;

/**
 * Parses Accept headers. Clients send several headers or one comma-joined
 * list; a type with `q=0` is refused. With no usable header, anything goes.
 */
export function parseAccept(header: string | readonly string[] | undefined): MediaTypeAcceptance {
  if (typeof header !== 'string') return parseHeaders(header);
  let acceptance = parsed.get(header);
  if (acceptance === undefined) {
    acceptance = parseHeaders(header);
    if (parsed.size >= maxParsed) parsed.clear();
    parsed.set(header, acceptance);
  }
  return acceptance;
}

function parseHeaders(header: string | readonly string[] | undefined): MediaTypeAcceptance {
  const values = header === undefined ? [] : typeof header === 'string' ? [header] : header;
  const named: string[] = [];
  let wildcard = false;
  for (const value of values) {
    for (const item of value.split(',')) {
      const [rawType = '', ...parameters] = item.split(';');
      const type = rawType.trim().toLowerCase();
      if (type === '' || parameters.some((parameter) => /^\s*q\s*=\s*0(\.0*)?\s*$/i.test(parameter))) continue;
      if (type === '*/*' || type === 'application/*') wildcard = true;
      else named.push(type);
    }
  }
  if (wildcard || named.length === 0) return { accepts: () => true, named };
  const set = new Set(named);
  return { accepts: (mediaType) => set.has(mediaType), named };
}
