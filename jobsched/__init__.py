"""jobsched: command line entry points (``jobsched api|dispatcher|worker|migrate|embedded``)."""
