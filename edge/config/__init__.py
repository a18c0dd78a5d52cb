"""The building config and its files: what one YAML file says, and how it is read, checked,
written and replaced.

`building` composes `BuildingConfig` from the shared sections and every feature's, and loads and
checks a file; `settings` holds the parts every feature's section is built from; `yaml_source` and
`problem_lines` put each problem at its FILE:LINE:COL; `cli` is the `--config` option every
command takes; `files` and `apply` keep and apply a config from the fleet; `starter` writes
`edge init`'s first config. This file imports nothing: a feature's settings import
`edge.config.settings` without composing the building config, which imports every feature's
settings.
"""
