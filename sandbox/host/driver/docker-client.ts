import Dockerode from 'dockerode';

/** Options for dockerode from DOCKER_HOST (unix:///path or tcp://host:port); the local socket by default. */
export function dockerOptions(dockerHost: string | undefined): Dockerode.DockerOptions {
  if (!dockerHost) return { socketPath: '/var/run/docker.sock' };
  const url = new URL(dockerHost);
  if (url.protocol === 'unix:') return { socketPath: url.pathname };
  if (url.protocol === 'tcp:' || url.protocol === 'http:' || url.protocol === 'https:') {
    return {
      host: url.hostname,
      port: Number(url.port || 2375),
      protocol: url.protocol === 'https:' ? 'https' : 'http',
    };
  }
  throw new Error(`DOCKER_HOST "${dockerHost}" is not unix:///path or tcp://host:port`);
}

export function createDocker(dockerHost: string | undefined): Dockerode {
  return new Dockerode(dockerOptions(dockerHost));
}
