export { novaUpgrade } from './upgrade';
export { upgradeComputeBatch } from './computeBatch';
