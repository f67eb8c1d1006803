/** DOCKER_HOST as the docker CLI reads it (an empty value counts as unset), for `docker-daemon:`. */
export function dockerHostFromEnvironment(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const host = env['DOCKER_HOST'];
  return host === undefined || host === '' ? undefined : host;
}
