import dataclasses

import pytest

from compiler import registry


def test_aliases_resolve_to_dated_snapshots():
    snapshot = registry.resolve("paw-smollm2-135m")
    assert snapshot.name == "paw-smollm2-135m-20261206"
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


def test_snapshots_from_before_shapes_and_rewrites_keep_their_fingerprint():
    old = registry.resolve("paw-smollm2-135m-20261202b")
    payload = old.fingerprint_payload()
    assert "constraint_rules" not in payload
    assert "augment_variants" not in payload["training"]
    new = registry.resolve("paw-smollm2-135m-20261202c")
    assert new.fingerprint_payload()["constraint_rules"] == 2
    assert new.training["augment_variants"] > 0
    assert "keep_answer_shares" not in new.training
    # The two differ in what they compile and how, and nothing else.
    assert new.prompt_format == old.prompt_format


def test_the_default_keeps_answer_shares_and_reads_constraint_rules_4():
    old, new = registry.resolve("paw-smollm2-135m-20261202c"), registry.resolve()
    assert new.name == "paw-smollm2-135m-20261206"
    ours, theirs = new.fingerprint_payload(), old.fingerprint_payload()
    assert {key for key in ours if ours[key] != theirs[key]} == {
        "name",
        "training",
        "constraint_rules",
    }
    assert ours["constraint_rules"] == 4
    assert new.training == {**old.training, "keep_answer_shares": True}


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
        "latest_snapshot": "paw-smollm2-135m-20261206",
    }


def test_each_snapshot_pins_the_prompt_format_its_programs_run_with():
    from pawhub.prompt import prompt_template
    from programs.models import Program

    assert registry.resolve().prompt_format == 2
    for older in ("paw-smollm2-135m-20261124", "paw-smollm2-135m-20261202"):
        # Their fingerprints (and program ids) hash the format they always had.
        assert registry.resolve(older).fingerprint_payload()["prompt_format"] == 1
        assert registry.prompt_format_of(older) == 1
    assert registry.prompt_format_of(registry.resolve().name) == 2
    # vLLM snapshots are not offered here, but their programs still run here.
    assert registry.prompt_format_of("paw-smollm2-135m-vllm-20261125") == 1
    assert registry.prompt_format_of("no-such-snapshot") == 1

    pseudo = "Task: say hi"
    old = Program(pseudo_program=pseudo, compiler_snapshot="paw-smollm2-135m-20261202")
    new = Program(pseudo_program=pseudo, compiler_snapshot=registry.resolve().name)
    assert old.prompt_template == prompt_template(pseudo, 1)
    assert new.prompt_template == prompt_template(pseudo, 2)
    assert old.prompt_template != new.prompt_template


def test_the_vllm_snapshot_compiles_the_cpu_defaults_recipe(settings):
    """One recipe, two engines: the vLLM alias's snapshot differs from the CPU
    default's only in its name, its description and its engine."""
    settings.PAW_ENABLE_VLLM = True
    vllm = registry.resolve("paw-smollm2-135m-vllm")
    cpu = registry.resolve("paw-smollm2-135m")
    assert (vllm.name, vllm.engine) == ("paw-smollm2-135m-vllm-20261206", "vllm")
    assert registry.compile_queue(vllm.name) == registry.GPU_COMPILE_QUEUE
    ours, theirs = vllm.fingerprint_payload(), cpu.fingerprint_payload()
    assert {key for key in ours if ours[key] != theirs[key]} == {"name", "engine"}
    assert ours["constrained_output"] is True and ours["constraint_rules"] == 4
    assert vllm.training["augment_variants"] > 0


def test_old_snapshots_keep_their_fingerprints():
    """Pinned: a snapshot's fingerprint is in every program id it compiled."""
    pinned = {
        "paw-smollm2-135m-20261124": "82847ab8d0240e03046bbd048e26afb6",
        "paw-smollm2-135m-20261202c": "a423c521bbcc8fc00b6a4ff22573a3e8",
        "paw-smollm2-135m-vllm-20261125": "4aa1ee94e48c8f1e43ee022101be0e8f",
        "paw-smollm2-135m-vllm-20261205": "fd875b7a135cecbcadf4c2269bfad59e",
        "paw-smollm2-135m-20261206": "6b38dc9b742258decee2061c4ba7f98a",
    }
    for name, prefix in pinned.items():
        assert registry._BY_NAME[name].fingerprint.startswith(prefix), name
