export { novaUpgrade } from './upgrade';
export { upgradeComputeBatch } from './computeBatch';
export { setupLoadBalancers } from './setupLoadBalancers';
