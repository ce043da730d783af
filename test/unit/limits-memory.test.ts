import { MemoryLimitStore } from '../../core/adapters/memory/limits.js';
import { describeLimitStoreContract } from '../contract/limit-store-contract.js';

describeLimitStoreContract('memory', () => Promise.resolve({ limits: new MemoryLimitStore(), cleanup: () => Promise.resolve() }));
