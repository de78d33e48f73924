import { readFileSync } from 'node:fs';

/**
 * The uid that owns the client end of a loopback TCP connection, from /proc/net/tcp (Linux and gVisor
 * both list each socket's owner): the row whose local address is 127.0.0.1:clientPort and whose remote
 * address is 127.0.0.1:serverPort. Undefined when there is none (the client already closed).
 */
export function socketOwner(table: string, clientPort: number, serverPort: number): number | undefined {
  const local = `0100007F:${hexPort(clientPort)}`;
  const remote = `0100007F:${hexPort(serverPort)}`;
  for (const line of table.split('\n')) {
    const fields = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid …
    if (fields[1] === local && fields[2] === remote) {
      const uid = Number(fields[7]);
      return Number.isInteger(uid) ? uid : undefined;
    }
  }
  return undefined;
}

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

/** The owner of the connection from 127.0.0.1:clientPort to our 127.0.0.1:serverPort, read now. */
export function loopbackPeerUid(clientPort: number, serverPort: number): number | undefined {
  try {
    return socketOwner(readFileSync('/proc/net/tcp', 'utf8'), clientPort, serverPort);
  } catch {
    return undefined;
  }
}
