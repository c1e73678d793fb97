"""The trainer's task for sequence data (`SequenceData`): the encoder, the views and the online monitor.

* encoder: ``config.encoder`` ("auto": ``dilated_cnn``, TS2Vec's), built with the method's ``encoder_defaults``
  where the encoder takes them and ``encoder_options`` does not set them (CPC needs a causal one; TS2Vec's own is
  centred with dropout 0.1, and centred is the default of the methods that do not say, such as ``simclr``);
* views: ``config.augment`` ("auto": the method's ``series_views`` preset, see
  :data:`contrastlab.views.series.SERIES_PRESETS`), scaled by ``config.strength``;
* monitor: kNN top-1 of a fixed probe of test series against a bank of training series, on pooled features;
* final evaluation (:func:`contrastlab.train.evaluate_sequences.evaluate_sequences`): RBF SVM and linear probe on
  frozen pooled features, beside 1-NN Euclidean on the raw series and the same encoder untrained.

>>> import tempfile
>>> from contrastlab.train import Trainer, TrainConfig
>>> cfg = TrainConfig(method="ts2vec", data="ucr:ItalyPowerDemand", steps=2, batch_size=8, final_eval=False,
...                   encoder_options={"depth": 2, "hidden": 8, "out_dim": 16})     # doctest: +SKIP
>>> Trainer.from_config(cfg, tempfile.mkdtemp(), show_progress=False).fit()["step"]  # doctest: +SKIP
2
"""
from __future__ import annotations

import inspect

import torch

from ..methods import create_method
from .seeding import generator as _generator
from .task_base import _Features, _fits_in_memory, _start_encoder, _Task, register_task

__all__ = ["SequenceTask"]


@register_task("sequence")
class SequenceTask(_Task):
    @staticmethod
    def load(config):
        from ..data import load_sequences
        return load_sequences(config.data, **config.data_options)

    @staticmethod
    @_fits_in_memory
    def build(config, data, run_dir):
        from ..methods import METHODS
        from ..models import ENCODERS, create_encoder
        name = "dilated_cnn" if config.encoder == "auto" else config.encoder
        options = dict(config.encoder_options)
        cls = ENCODERS.get(name)
        takes = set(inspect.signature(cls).parameters) if cls is not None else set()
        wanted = {"causal": False, **getattr(METHODS.get(config.method), "encoder_defaults", {})}
        options.update({k: v for k, v in wanted.items() if k in takes and k not in options})

        def make_encoder():
            return create_encoder(name, in_channels=data.channels, **options)
        encoder = _start_encoder(make_encoder(), config)
        fdim = getattr(encoder, "out_dim", None)
        if not isinstance(fdim, int):
            raise ValueError(f"encoder {name!r} has no int `out_dim`; sequence encoders need one (see "
                             f"contrastlab.models.sequence)")
        method = create_method(config.method, encoder, feature_dim=fdim, num_classes=data.num_classes,
                               **config.hyperparameters)
        info = {"encoder": name, "options": options, "modality": "sequence", "in_channels": data.channels,
                "length": data.length, "feature_dim": fdim,
                "parameters": sum(p.numel() for p in method.parameters())}
        return method, info, make_encoder

    def default_augment(self):
        from ..methods import METHODS
        from ..views.series import series_preset
        cfg = self.trainer.config
        name = getattr(METHODS.get(cfg.method), "series_views", "series") if cfg.augment == "auto" else cfg.augment
        return series_preset(name, strength=cfg.strength)

    def _setup_probe(self) -> None:
        from ..data import probe_subset
        t = self.trainer
        d, cfg = t.data, t.config
        on_test = d.x_test is not None
        probe = probe_subset(d, size=cfg.probe_size, seed=cfg.seed)
        xs, ys = (d.x_test, d.y_test) if on_test else (d.x, d.y)
        self._probe = (xs[probe], ys[probe] if ys is not None else None)
        bank = torch.randperm(len(d), generator=_generator(cfg.seed, 3))
        if not on_test:
            bank = bank[~torch.isin(bank, probe)]
        bank = bank[: cfg.monitor_bank]
        self._bank = (d.x[bank], d.y[bank] if d.y is not None and len(bank) else None)
        if not t.run.probe_file.exists():
            labels = self._probe[1] if self._probe[1] is not None else torch.full((len(probe),), -1)
            t.run.write_probe(ids=probe.numpy(), labels=labels.numpy(), classes=d.classes,
                              series=self._probe[0].numpy())

    def monitor_features(self, method):
        from ..eval.sequences import embed_series
        if self._probe is None:
            self._setup_probe()
        feats = _Features(method)
        norm = torch.nn.functional.normalize
        probe = norm(embed_series(feats, self._probe[0]), dim=1)
        bank = norm(embed_series(feats, self._bank[0]), dim=1) if self._bank[1] is not None else None
        return probe, bank

    def monitor(self, method) -> tuple[dict, torch.Tensor]:
        from ..eval import knn_top1
        probe, bank = self.monitor_features(method)
        record = {}
        if bank is not None and self._probe[1] is not None:
            record["knn_top1"] = knn_top1(bank, self._bank[1], probe, self._probe[1], k=min(20, len(bank)),
                                          temperature=0.1)
        return record, probe

    def evaluate_run(self, *, parts=None, log=print) -> tuple[dict, object]:
        """The final evaluation of a sequence run and its report formatter (see the module docstring)."""
        from .evaluate_sequences import evaluate_sequences, format_sequence_report
        if parts is not None:
            raise ValueError(f"a sequence run is evaluated as a whole (SVM, linear probe, 1-NN Euclidean, the "
                             f"untrained encoder); do not choose parts, got {list(parts)}")
        return evaluate_sequences(self.trainer, log=log), format_sequence_report
