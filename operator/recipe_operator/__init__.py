"""The kopf operator that turns RecipeTrainingJobs into restartable DeepSpeed training gangs.

Layering: `kube` is the only module that talks to the Kubernetes API; `builders`, `phases`,
`failures` and `progress` are pure functions; `reconcile` carries out their decisions through
`kube`; `loops` and `leader` are what the Lease holder runs besides the watches; `webhook` is
admission; `runtime` is the state they share; `handlers` are thin kopf handlers gluing them.
"""
