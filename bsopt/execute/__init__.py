"""Phase 3 execution: where builds run. One interface (:class:`~bsopt.execute.base.Executor`), one
small file per executor: in this process, a local pool of killable worker processes, Ray actors."""
