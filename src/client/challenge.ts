/** One authentication challenge from a WWW-Authenticate header (RFC 9110 §11.6.1). */
export interface Challenge {
  /** Lower-cased: `basic`, `bearer`. */
  scheme: string;
  /** Parameters with lower-cased names: realm, service, scope, error. */
  params: Record<string, string>;
}

const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/**
 * Parses a WWW-Authenticate header, which may hold several challenges,
 * each with comma-separated `name=value` or `name="quoted value"` params.
 * Malformed trailing input is ignored: a client should use what it can.
 */
export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let rest = header.trim();
  let current: Challenge | undefined;
  while (rest.length > 0) {
    rest = rest.replace(/^[\s,]+/, '');
    const name = token.exec(rest)?.[0];
    if (name === undefined) break;
    const afterName = rest.slice(name.length).replace(/^\s+/, '');
    if (current !== undefined && afterName.startsWith('=') && !afterName.startsWith('==')) {
      const { value, remainder } = readValue(afterName.slice(1).replace(/^\s+/, ''));
      current.params[name.toLowerCase()] = value;
      rest = remainder;
      continue;
    }
    if (afterName.startsWith('=')) {
      // token68 padding (`Negotiate abc==`): not a parameter; skip it.
      rest = afterName.replace(/^=+/, '');
      continue;
    }
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
    rest = afterName;
  }
  return challenges;
}

function readValue(input: string): { value: string; remainder: string } {
  if (!input.startsWith('"')) {
    // Leniently up to the next comma: registries send unquoted URLs, which are not RFC tokens.
    const value = /^[^,\s]*/.exec(input)?.[0] ?? '';
    return { value, remainder: input.slice(value.length) };
  }
  let value = '';
  let index = 1;
  while (index < input.length) {
    const char = input[index] as string;
    if (char === '\\' && index + 1 < input.length) {
      value += input[index + 1];
      index += 2;
      continue;
    }
    if (char === '"') return { value, remainder: input.slice(index + 1) };
    value += char;
    index += 1;
  }
  return { value, remainder: '' };
}
