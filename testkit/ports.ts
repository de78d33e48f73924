/** A loopback port that was free a moment ago: the one the micro-VM's code uses for its engine's port. */
export { freeLoopbackPort as freePort } from '../sandbox/host/vm/qemu-process.js';
