import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where registry credentials are looked for when none are given, in the
 * order podman and skopeo use: REGISTRY_AUTH_FILE, the containers auth
 * file under XDG_RUNTIME_DIR and ~/.config, then Docker's config.json.
 * The environment is read here because only config/ reads it.
 */
export function defaultAuthFiles(env: Record<string, string | undefined> = process.env): string[] {
  const home = env['HOME'] ?? homedir();
  const files: string[] = [];
  if (env['REGISTRY_AUTH_FILE']) files.push(env['REGISTRY_AUTH_FILE']);
  if (env['XDG_RUNTIME_DIR']) files.push(join(env['XDG_RUNTIME_DIR'], 'containers', 'auth.json'));
  files.push(join(env['XDG_CONFIG_HOME'] ?? join(home, '.config'), 'containers', 'auth.json'));
  files.push(join(env['DOCKER_CONFIG'] ?? join(home, '.docker'), 'config.json'));
  return files;
}
