import dataclasses

import pytest

from compiler import registry


def test_aliases_resolve_to_dated_snapshots():
    snapshot = registry.resolve("paw-smollm2-135m")
    assert snapshot.name == "paw-smollm2-135m-20261202"
    assert registry.resolve(None) == snapshot
    assert registry.resolve(snapshot.name) == snapshot
    # Older snapshots stay resolvable: their programs keep their ids and behaviour.
    assert registry.resolve("paw-smollm2-135m-20261124").name == "paw-smollm2-135m-20261124"


def test_snapshots_from_before_output_constraints_keep_their_fingerprint():
    """Adding `constrained_output` must not change an older snapshot's program ids."""
    old = registry.resolve("paw-smollm2-135m-20261124")
    assert not old.constrained_output
    assert "constrained_output" not in old.fingerprint_payload()
    new = registry.resolve()
    assert new.constrained_output and new.fingerprint_payload()["constrained_output"] is True
    assert new.fingerprint != old.fingerprint


def test_unknown_compiler_lists_the_known_ones():
    with pytest.raises(registry.UnknownCompiler, match="paw-smollm2-135m-20261124"):
        registry.resolve("nope")


def test_fingerprint_pins_base_model_and_every_training_parameter():
    from compiler.training import TrainingParams

    snapshot = registry.resolve()
    fields = {f.name for f in dataclasses.fields(TrainingParams)}
    # Every field spelled out: a changed default can't change behaviour silently.
    assert set(snapshot.training) == fields
    payload = snapshot.fingerprint_payload()
    assert len(payload["base_model_sha256"]) == 64
    assert len(snapshot.fingerprint) == 64
    changed = dataclasses.replace(snapshot, training={**snapshot.training, "steps": 41})
    assert changed.fingerprint_payload() != payload


def test_compilers_listing():
    (listed,) = registry.compilers()
    assert listed == {
        "name": "paw-smollm2-135m",
        "description": registry.resolve().description,
        "default": True,
        "latest_snapshot": "paw-smollm2-135m-20261202",
    }
