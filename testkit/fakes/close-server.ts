import type { Server } from 'node:http';

/** Closes a fake's HTTP server at once: kept-alive and streaming connections are cut, not waited for. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
