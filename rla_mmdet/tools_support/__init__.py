"""What the scripts under ``tools/`` need, apart from the model package.

``tools/train.py`` and ``tools/test.py`` stay thin: they read a config,
apply the command-line switches that MMDetection's own tools have, and hand
over to MMEngine's ``Runner``. The few things added here are checks that a
user would otherwise discover late and the set-up that lets the distributed
path run on machines without GPUs:

- :mod:`.args`: the options shared with MMDetection's tools;
- :mod:`.config`: reading a config, ``--data-root``, and the config
  mistakes caught before a run (unknown backbone, ``num_classes``, a missing
  pretrained file);
- :mod:`.data_checks`: the COCO-style annotation files and images;
- :mod:`.work_dir`: no new run over another run's checkpoints, and
  ``--resume`` past a cut ``last_checkpoint``;
- :mod:`.distributed`: the gloo process group and a DDP wrapper for CPU
  models (importing it registers that wrapper);
- :mod:`.shapes`: the generator of the synthetic shapes dataset.

``import rla_mmdet`` imports none of these, so a config's ``custom_imports``
registers the models and hooks and nothing else. This folder is part of the
installed package, so the tools also work with ``pip install .``.
"""
