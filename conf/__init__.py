"""strata's Hydra configs. A wheel installs this folder as the package `strata_conf` (pretrain.config.CONF_DIR)."""
