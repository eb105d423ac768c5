import CordonModelWorker
#if canImport(Glibc)
import Glibc
#endif

// The model worker (docs/models.md, "The model worker"): cordond starts one per provider,
// inside that provider's sandbox, and speaks JSON-RPC with it over stdin and stdout.
exit(ModelWorker.main())
