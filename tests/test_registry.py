"""The dataset registry (``allinone_lab.data.registry``): one spec per dataset, its preparer found by name,
the jobs' split maps and subtasks read from it."""

import subprocess
import sys

import pytest

from allinone_lab.data import prepare, registry
from allinone_lab.data.datasets import MultipleChoiceDataset, OpenQADataset, VCRDataset
from allinone_lab.train import jobs


def test_every_dataset_has_one_preparer_and_the_old_names_still_import():
    assert list(prepare.PREPARERS) == list(registry.DATASETS)
    assert prepare.DATASETS is registry.DATASETS and prepare.DatasetSpec is registry.DatasetSpec
    for name, spec in registry.DATASETS.items():
        assert spec.name == name and spec.label
        assert spec.preparer is prepare.PREPARERS[name] and spec.preparer.run.__module__ == prepare.__name__
    assert jobs.DEFAULT_SPLITS == {name: spec.job_splits for name, spec in registry.DATASETS.items()}
    assert jobs.SERVED_BY is registry.SERVED_BY
    assert registry.DATASETS["lsmdc-mc"].label == "LSMDC" and registry.DATASETS["msrvtt"].label == "MSR-VTT"


def test_job_splits_name_prepared_splits():
    for spec in registry.DATASETS.values():
        assert set(spec.job_splits) <= set(jobs.JOB_SPLITS), spec.name
        for subtask in spec.subtasks or [None]:
            for split in spec.job_splits.values():
                assert spec.locate(split, subtask)[0] in spec.splits, (spec.name, subtask, split)


def test_subtasks_come_from_the_registry():
    tgif, vcr = registry.DATASETS["tgif-qa"], registry.DATASETS["vcr"]
    assert tgif.subtask_for("qa", None) == "frameqa" and vcr.subtask_for("vcr", None) == "qa"
    assert tgif.items("frameqa") == "qa" and tgif.dataset_class("frameqa") is OpenQADataset
    assert tgif.dataset_class("action") is MultipleChoiceDataset and vcr.dataset_class("qar") is VCRDataset
    assert tgif.locate("test", "action") == ("action_test", "action")
    assert vcr.locate("qar_val") == ("qar_val", "qar")
    with pytest.raises(ValueError, match=r"task 'mc' needs subtask 'action' or 'transition' \(multiple"):
        tgif.subtask_for("mc", None)
    with pytest.raises(ValueError, match=r"subtask='rationale'; expected 'qa' \(Q->A\) or 'qar' \(QA->R\)"):
        vcr.subtask_for("vcr", "rationale")
    with pytest.raises(ValueError, match="only tgif-qa and vcr take a subtask"):
        registry.DATASETS["msrvtt-qa"].subtask_for("qa", "action")
    with pytest.raises(ValueError, match="subtask=None for split 'test'"):
        tgif.locate("test")


def test_reading_the_registry_does_not_load_the_preparers():
    code = ("import sys, allinone_lab.data.registry as r; r.DATASETS['vcr'].splits; "
            "assert 'allinone_lab.data.prepare' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
