"""`shoal-cni`: a CNI 1.1 plugin whose networks are shoald's (see shoal.cni.main)."""
