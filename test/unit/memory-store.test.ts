import { MemoryStore } from '../../core/adapters/memory/store.js';
import { describeStoreContract } from '../contract/store-contract.js';

describeStoreContract('memory', () => {
  const store = new MemoryStore();
  return Promise.resolve({ store, cleanup: () => store.close() });
});
