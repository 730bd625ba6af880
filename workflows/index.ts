// What the worker registers: every workflow, by function.
export { novaUpgrade } from './upgrade';
export { hupComputeBatch, upgradeComputeBatch } from './computeBatch';
export { setupLoadBalancers } from './setupLoadBalancers';
