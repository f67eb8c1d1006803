import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { accessRulesConfig, repositoryActions, type AccessRulesConfig } from '../config/auth.ts';

export type RepositoryAction = (typeof repositoryActions)[number];

const allActions: ReadonlySet<RepositoryAction> = new Set(repositoryActions);
const noActions: ReadonlySet<RepositoryAction> = new Set();
/** Remembered answers of `actions`, at most (then forgotten all at once). */
const maxAnswers = 10_000;

interface CompiledRule {
  pattern: string;
  matcher: RegExp;
  anonymous: ReadonlySet<RepositoryAction>;
  /** `*`, a user name, or `@group` → actions. */
  grants: ReadonlyMap<string, ReadonlySet<RepositoryAction>>;
}

export class AccessRulesError extends Error {
  override name = 'AccessRulesError';
}

/**
 * Who may do what on which repositories. For a name, the rule with the
 * longest matching pattern decides alone (the earlier one on a tie);
 * admins may do everything everywhere; a name no rule matches is closed.
 */
export class AccessRules {
  readonly #rules: CompiledRule[];
  readonly #groups: ReadonlyMap<string, ReadonlySet<string>>;
  readonly #admins: ReadonlySet<string>;
  /** Answers of `actions` by user and name: every request asks, and rules never change (a changed file is a new AccessRules). */
  readonly #answers = new Map<string, ReadonlySet<RepositoryAction>>();

  constructor(config: AccessRulesConfig, source = 'access rules') {
    const groups = new Map<string, Set<string>>();
    for (const [group, members] of Object.entries(config.groups)) {
      for (const member of members) {
        if (!groups.has(member)) groups.set(member, new Set());
        groups.get(member)?.add(`@${group}`);
      }
    }
    const known = (principal: string, where: string): string => {
      if (principal.startsWith('@') && config.groups[principal.slice(1)] === undefined) {
        throw new AccessRulesError(`${source}: ${where} names group ${principal}, which is not defined under groups`);
      }
      return principal;
    };
    this.#groups = groups;
    this.#admins = new Set(config.admins.map((admin) => known(admin, 'admins')));
    const compiled = config.rules.map((rule, index) => ({
      pattern: rule.repositories,
      matcher: globToRegExp(rule.repositories),
      anonymous: new Set(rule.anonymous),
      grants: new Map(Object.entries(rule.grants).map(([principal, actions]) => [known(principal, `rules[${index}].grants`), new Set(actions)])),
    }));
    // Stable sort: among equally long patterns the earlier rule stays first.
    this.#rules = compiled.sort((a, b) => b.pattern.length - a.pattern.length);
  }

  /** Rules used when none are configured: every signed-in user may do everything; anyone may pull if `anonymousPull`. */
  static everyUser(anonymousPull: boolean): AccessRules {
    return new AccessRules(accessRulesConfig.parse({ rules: [{ repositories: '**', anonymous: anonymousPull ? ['pull'] : [], grants: { '*': [...repositoryActions] } }] }));
  }

  /** Reads rules from a YAML file (`admins`, `groups`, `rules`). */
  static async load(path: string): Promise<AccessRules> {
    let value: unknown;
    try {
      value = parseYaml(await readFile(path, 'utf8')) as unknown;
    } catch (error) {
      throw new AccessRulesError(`cannot read access rules from ${path}: ${(error as Error).message}`, { cause: error });
    }
    const result = accessRulesConfig.safeParse(value ?? {});
    if (!result.success) {
      const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
      throw new AccessRulesError(`${path}: invalid access rules:\n  ${issues.join('\n  ')}`);
    }
    return new AccessRules(result.data, path);
  }

  isAdmin(user: string | undefined): boolean {
    if (user === undefined) return false;
    if (this.#admins.has(user)) return true;
    for (const group of this.#groups.get(user) ?? []) if (this.#admins.has(group)) return true;
    return false;
  }

  /**
   * Name prefixes outside which `user` (undefined: anonymous) may pull
   * nothing: the literal start of every rule pattern that grants them pull
   * ('' for an admin or a pattern starting with a wildcard). A name inside
   * may still be closed by a longer rule; listings check each name.
   */
  pullPrefixes(user: string | undefined): string[] {
    if (this.isAdmin(user)) return [''];
    const principals = user === undefined ? [] : ['*', user, ...(this.#groups.get(user) ?? [])];
    const prefixes = new Set<string>();
    for (const rule of this.#rules) {
      const grants = rule.anonymous.has('pull') || principals.some((principal) => rule.grants.get(principal)?.has('pull') === true);
      if (grants) prefixes.add(rule.pattern.split('*')[0] as string);
    }
    return [...prefixes];
  }

  /** Whether some rule lets anonymous callers pull. */
  get anonymousPull(): boolean {
    return this.#rules.some((rule) => rule.anonymous.has('pull'));
  }

  /** What `user` (undefined: anonymous) may do on the repository `name`. */
  actions(user: string | undefined, name: string): ReadonlySet<RepositoryAction> {
    const key = user === undefined ? `\n${name}` : `${user}\n${name}`;
    let answer = this.#answers.get(key);
    if (answer === undefined) {
      answer = this.#decide(user, name);
      if (this.#answers.size >= maxAnswers) this.#answers.clear();
      this.#answers.set(key, answer);
    }
    return answer;
  }

  #decide(user: string | undefined, name: string): ReadonlySet<RepositoryAction> {
    if (this.isAdmin(user)) return allActions;
    const rule = this.#rules.find((candidate) => candidate.matcher.test(name));
    if (rule === undefined) return noActions;
    if (user === undefined) return rule.anonymous;
    const allowed = new Set(rule.anonymous);
    const principals = ['*', user, ...(this.#groups.get(user) ?? [])];
    for (const principal of principals) for (const action of rule.grants.get(principal) ?? []) allowed.add(action);
    return allowed;
  }
}

/** `*`: any characters but `/`; `**`: any characters. Everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const source = glob
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\-]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`);
}
