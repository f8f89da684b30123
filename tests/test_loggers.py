"""W&B without an API key falls back to offline mode and says so; never touches the network."""

import logging

from curio.loggers import wandb_logger


def test_wandb_without_key_goes_offline(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        logger = wandb_logger(save_dir=str(tmp_path), project="p", name="n", tags=["tiny", 1])
    assert logger._wandb_init["mode"] == "offline"
    assert logger._wandb_init["tags"] == ["tiny", "1"]
    assert "offline" in caplog.text and "wandb sync" in caplog.text


def test_explicit_mode_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_logger(save_dir=str(tmp_path), project="p")._wandb_init["mode"] == "disabled"
    assert wandb_logger(mode="offline", save_dir=str(tmp_path), project="p")._wandb_init["mode"] == "offline"


def test_a_resumed_run_logs_to_the_same_wandb_run(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    first = wandb_logger(save_dir=str(tmp_path), project="p")._wandb_init
    again = wandb_logger(save_dir=str(tmp_path), project="p")._wandb_init
    assert first["id"] == again["id"] and first["resume"] == "allow"
    assert (tmp_path / "wandb_run_id").read_text().strip() == first["id"]
    assert wandb_logger(save_dir=str(tmp_path / "other"), project="p")._wandb_init["id"] != first["id"]
