"""Fault tests (issue 23, item 1): kill -9 during checkpoint writes, damaged checkpoints, a full disk, DDP interrupted
and resumed, FSDP resume. The NaN-loss stop is tested in test_train.py.

The kill tests run in a driver process (`python tests/test_faults.py DRIVER ARGS`, single-threaded torch) that forks
the writers: a fork costs milliseconds where a fresh python with torch costs seconds, so each test kills many writers.
Run: `flock /tmp/cpu.lock nice -n 19 python -m pytest -q tests/test_faults.py` (the kill tests print their counts).
"""
import errno, json, os, random, re, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

def tiny_cfg(**kw):
    from mosaiclab.train import TrainConfig
    over = {"model.d_model": 32, "model.n_layers": 2, "model.n_heads": 2, "model.d_ff": 48, "max_steps": 6, "global_batch": 8,
            "micro_batch": 4, "eval_every": 0, "eval_samples": 16, "log_every": 1, "checkpoint_every": 0, "precision": "fp32",
            "max_minutes": None, "data.seq_len": 32}
    over.update(kw)
    return TrainConfig.lab().with_overrides(over)

# ---------------------------------------------------------------------------------------------------------------------
# the driver: a process that forks checkpoint writers and SIGKILLs them
# ---------------------------------------------------------------------------------------------------------------------
class _Writer:
    "A tiny model and an optimizer with state, saved by the trainer's own `save_checkpoint`."
    def __init__(self):
        from mosaiclab.model import MosaicBertForMaskedLM
        from mosaiclab.train import make_optimizer
        torch.manual_seed(0)
        self.cfg = tiny_cfg()
        self.model = MosaicBertForMaskedLM(self.cfg.model)
        self.opt, self.sched = make_optimizer(self.model, self.cfg)
        self.model(torch.randint(5, 100, (2, 8)), labels=torch.randint(5, 100, (2, 8))).loss.backward()
        self.opt.step(); self.sched.step()                     # Adam moments: trainer.pt is twice the weights' size
        self.first = next(n for n, _ in self.model.named_parameters())

    def save(self, run: Path, step: int, writer: int, keep: int = 2) -> Path:
        "Checkpoint `step` with every weight set to `step * 1000 + writer`, so a mix of two saves is detectable."
        from mosaiclab.train import save_checkpoint
        with torch.no_grad():
            for p in self.model.parameters(): p.fill_(step * 1000 + writer)
        return save_checkpoint(run, step, self.model, self.opt, self.sched, {"step": step, "writer": writer}, self.cfg, keep)

    def identity(self, run: Path) -> tuple[int, int]:
        "(step, writer) of the checkpoint `latest` names; raises if it does not load or its files are not of one save."
        from mosaiclab.train import read_checkpoint
        ck, weights, state = read_checkpoint(run)
        step, writer = state["stream"]["step"], state["stream"]["writer"]
        assert state["step"] == step and f"step-{step:08d}" in ck.name, (ck, state["step"], step)
        assert weights[self.first].unique().tolist() == [step * 1000 + writer], f"{ck}: weights of another save"
        assert state["optimizer"] is not None and state["optimizer"]["state"], f"{ck}: no optimizer state"
        return step, writer

def _fork(child) -> int:
    "Run `child()` in a forked process that never returns into the driver."
    pid = os.fork()
    if pid == 0:
        try: child()
        finally: os._exit(0)
    return pid

def _read_all(fd: int) -> str:
    out = b""
    while chunk := os.read(fd, 65536): out += chunk
    os.close(fd); return out.decode()

def _leftovers(run: Path) -> list[str]:
    "Files a save leaves behind that are not checkpoints: temporary folders and pointer files."
    ck = run / "checkpoints"
    return sorted(p.name for p in ck.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))

def drive_random_kills(work: Path, loops: int, seed: int) -> dict:
    """`loops` times: fork a writer that resumes from the latest checkpoint (every third time from the older one, as
    `--resume PATH` does after a damaged latest) and saves step after step; SIGKILL it after a random delay; check that
    `latest` loads, is one save's files, and is the last save that returned or the one in flight."""
    w, rng = _Writer(), random.Random(seed)
    run = work / "run"
    t0 = time.perf_counter()
    for s in (1, 2): w.save(run, s, 0)
    save_s = (time.perf_counter() - t0) / 2
    records, unloadable = [], 0
    for i in range(1, loops + 1):
        from mosaiclab.train import find_checkpoint
        latest = w.identity(run)
        steps = sorted(int(p.name[5:]) for p in (run / "checkpoints").glob("step-*") if p.name[5:].isdigit())
        older = [s for s in steps if s < latest[0]]
        start = older[-1] if i % 3 == 0 and older else latest[0]
        r, wfd = os.pipe()
        def child():
            os.close(r)
            step = start
            while True:
                step += 1
                w.save(run, step, i)
                os.write(wfd, f"{step}\n".encode())
        pid = _fork(child); os.close(wfd)
        delay = rng.uniform(0, 4 * save_s)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
        done = [int(x) for x in _read_all(r).split()]
        rec = {"loop": i, "start": start, "delay_s": round(delay, 4), "saves_returned": len(done)}
        # after a kill: the last save that returned, or the one in flight if it got past its `latest` rename
        last = done[-1] if done else None
        allowed = {(last, i), (last + 1, i)} if done else {latest, (start + 1, i)}
        try:
            rec["latest"] = list(w.identity(run))
            rec["ok"] = tuple(rec["latest"]) in allowed
            if not rec["ok"]: rec["error"] = f"latest is {rec['latest']}, expected one of {sorted(allowed)}"
        except Exception as e:
            unloadable += 1
            rec.update(ok=False, error=f"{type(e).__name__}: {e}")
            records.append(rec); break   # the run folder is broken: later loops would test nothing
        records.append(rec)
    return {"loops": len(records), "unloadable": unloadable, "save_seconds": save_s, "records": records}

# the filesystem calls a save makes: a kill can land between any two of them
_FS_CALLS = [(os, "replace"), (os, "rename"), (os, "unlink"), (os, "remove"), (os, "rmdir"), (os, "link"), (os, "mkdir")]

def _count_fs_calls(kill_at: int | None) -> list[int]:
    "Patch the filesystem calls and the writers to count; SIGKILL this process just before call number `kill_at`."
    import safetensors.torch, pathlib
    counter = [0]
    def wrap(fn):
        def f(*a, **k):
            counter[0] += 1
            if counter[0] == kill_at: os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)
        return f
    for mod, name in _FS_CALLS: setattr(mod, name, wrap(getattr(mod, name)))
    safetensors.torch.save_file = wrap(safetensors.torch.save_file)
    torch.save = wrap(torch.save)
    pathlib.Path.write_text = wrap(pathlib.Path.write_text)
    return counter

# each scenario: the checkpoints that exist (step, writer), the one resumed from, the step saved next, keep
SCENARIOS = {
    "next-step": dict(existing=[1, 2], resume=2, save=3, keep=2),
    "resumed-from-older-resaves-latest": dict(existing=[1, 2], resume=1, save=2, keep=2),
    "resumed-from-older-keep-1": dict(existing=[5, 10], resume=5, save=7, keep=1),
}

def drive_every_kill_point(work: Path) -> dict:
    """For each scenario and each k: a writer saves once and is SIGKILLed just before its k-th filesystem call (and
    once after the save returns); then `latest` must load and be the old checkpoint or the new one, and a resumed run's
    next save must succeed and leave no temporary files."""
    w = _Writer()
    out = {}
    for name, sc in SCENARIOS.items():
        template = work / name / "template"
        for s in sc["existing"]: w.save(template, s, 0, keep=len(sc["existing"]))
        old = (sc["existing"][-1], 0)
        new = (sc["save"], 1)
        r, wfd = os.pipe()                      # count the calls of one save
        probe = work / name / "probe"; shutil.copytree(template, probe)
        def count():
            c = _count_fs_calls(None); w.save(probe, sc["save"], 1, sc["keep"]); os.write(wfd, str(c[0]).encode())
        pid = _fork(count); os.close(wfd); os.waitpid(pid, 0)
        n_calls = int(_read_all(r))
        res = []
        for k in range(1, n_calls + 2):         # n_calls + 1: killed after the save returned
            run = work / name / f"kill-{k}"; shutil.copytree(template, run)
            pid = _fork(lambda: (_count_fs_calls(k), w.save(run, sc["save"], 1, sc["keep"]), os.kill(os.getpid(), signal.SIGKILL)))
            _, status = os.waitpid(pid, 0)
            rec = {"kill_before_call": k, "killed": os.WIFSIGNALED(status)}
            try:
                got = w.identity(run); rec["latest"] = list(got)
                rec["ok"] = got in (old, new)
                if not rec["ok"]: rec["error"] = f"latest is {got}, expected {old} or {new}"
                w.save(run, got[0] + 1, 2, sc["keep"])   # the resumed run's next checkpoint
                assert w.identity(run) == (got[0] + 1, 2)
                rec["leftovers"] = _leftovers(run)
                if rec["leftovers"]: rec.update(ok=False, error=f"left behind: {rec['leftovers']}")
            except Exception as e:
                rec.update(ok=False, error=f"{type(e).__name__}: {e}")
            res.append(rec)
            shutil.rmtree(run)
        out[name] = {"fs_calls": n_calls, "records": res}
    return out

def drive_write_failures(work: Path) -> dict:
    """A writer whose files may not grow past a limit (RLIMIT_FSIZE: the real writers fail mid-file, as on a full disk)
    saves step 3 over steps 1 and 2; its error, the checkpoint `latest` names afterwards, and what is left behind."""
    import resource
    w = _Writer()
    template = work / "template"
    for s in (1, 2): w.save(template, s, 0)
    sizes = {f.name: f.stat().st_size for f in (template / "checkpoints" / "step-00000002").iterdir()}
    cases = {"model.safetensors": sizes["model.safetensors"] // 2,                                   # fails in safetensors
             "trainer.pt": (sizes["model.safetensors"] + sizes["trainer.pt"]) // 2}                  # fails in torch.save
    assert sizes["trainer.pt"] > cases["trainer.pt"] > sizes["model.safetensors"], sizes
    out = {}
    for name, limit in cases.items():
        run = work / name; shutil.copytree(template, run)
        r, wfd = os.pipe()
        def child():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit then fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            try: w.save(run, 3, 1); msg = "no error"
            except Exception as e: msg = f"{type(e).__name__}|{getattr(e, 'errno', None)}|{e}"
            os.write(wfd, msg.encode())
        pid = _fork(child); os.close(wfd); os.waitpid(pid, 0)
        text = _read_all(r)
        kind, err_no, msg = text.split("|", 2) if text.count("|") >= 2 else ("none", "None", text)
        out[name] = {"limit": limit, "error_type": kind, "errno": int(err_no) if err_no != "None" else None, "message": msg,
                     "latest": list(w.identity(run)), "leftovers": _leftovers(run)}
    return out

DRIVERS = {"random-kills": drive_random_kills, "every-kill-point": drive_every_kill_point, "write-failures": drive_write_failures}

def _drive(name: str, work: Path, **kw) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, __file__, name, str(work), json.dumps(kw)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])

# ---------------------------------------------------------------------------------------------------------------------
# kill -9
# ---------------------------------------------------------------------------------------------------------------------
KILL_LOOPS = 100

def test_kill9_at_random_moments_never_leaves_an_unloadable_latest(tmp_path):
    res = _drive("random-kills", tmp_path, loops=KILL_LOOPS, seed=23)
    bad = [r for r in res["records"] if not r["ok"]]
    print(f"\nkill -9 loops: {res['loops']}, unloadable latest: {res['unloadable']}, wrong latest: {len(bad) - res['unloadable']}"
          f" (one save takes {res['save_seconds'] * 1000:.0f} ms; kills land within 4 saves)")
    assert res["loops"] == KILL_LOOPS and not bad, bad[:5]
    # the kills did land inside saves: some writers died before their first save returned, some after several
    returned = [r["saves_returned"] for r in res["records"]]
    assert min(returned) == 0 and max(returned) >= 2, returned

def test_kill9_before_every_filesystem_call_of_a_save(tmp_path):
    res = _drive("every-kill-point", tmp_path)
    for name, r in res.items():
        bad = [x for x in r["records"] if not x["ok"]]
        print(f"\n{name}: killed before each of {r['fs_calls']} calls and after the save; bad: {len(bad)}")
        assert r["fs_calls"] >= 5 and not bad, (name, bad[:5])
        assert sum(x["killed"] for x in r["records"]) == len(r["records"])

# ---------------------------------------------------------------------------------------------------------------------
# damaged checkpoints and configs from a newer version: one clear error naming the file
# (test_train.py::test_corrupted_checkpoint_is_named covers a truncated model.safetensors, test_weights_safety.py a
# trainer.pt that would run code; test_bad_input.py the model folders)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    "A finished 2-step run with a checkpoint at each step: latest is step-00000002, step-00000001 is kept."
    from mosaiclab.train import pretrain
    run = tmp_path_factory.mktemp("faults") / "run"
    pretrain(tiny_cfg(max_steps=2, checkpoint_every=1), run, progress=False)
    return run

def _latest(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()

def _newer_trainer_state(ck: Path):
    state = torch.load(ck / "trainer.pt", weights_only=True)
    state["config"]["ema_decay"] = 0.999                      # a field a later version might add
    torch.save(state, ck / "trainer.pt")

def _newer_model_config(ck: Path):
    meta = json.loads((ck / "config.json").read_text())
    meta["config"]["rotary_base"] = 10000
    (ck / "config.json").write_text(json.dumps(meta))

def _garbage_header(ck: Path):
    data = bytearray((ck / "model.safetensors").read_bytes())
    data[:8] = (2**40).to_bytes(8, "little")                  # a header length past the end of the file
    (ck / "model.safetensors").write_bytes(bytes(data))

def _truncate(f: Path): f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])

# (name, damage the latest checkpoint folder, how it is read, the file the error must name, words it must say)
DAMAGE = [
    ("trainer-truncated", lambda ck: _truncate(ck / "trainer.pt"), "resume", "trainer.pt", "corrupted or truncated"),
    ("trainer-missing", lambda ck: (ck / "trainer.pt").unlink(), "resume", "trainer.pt", "corrupted or truncated"),
    ("weights-missing", lambda ck: (ck / "model.safetensors").unlink(), "resume", "model.safetensors", "corrupted or truncated"),
    ("weights-garbage-header", _garbage_header, "resume", "model.safetensors", "corrupted or truncated"),
    ("trainer-config-from-a-newer-version", _newer_trainer_state, "resume", "trainer.pt", "newer version"),
    ("latest-names-a-missing-folder", lambda ck: shutil.rmtree(ck), "resume", "../latest", "does not exist"),
    ("config-missing", lambda ck: (ck / "config.json").unlink(), "from_pretrained", "config.json", "no config.json"),
    ("config-from-a-newer-version", _newer_model_config, "from_pretrained", "config.json", "newer version"),
]

@pytest.mark.parametrize("name,damage,read,file,words", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_checkpoint_is_one_error_naming_the_file(finished_run, tmp_path, name, damage, read, file, words):
    from mosaiclab.train import CheckpointError, pretrain
    from mosaiclab.model import from_pretrained
    run = tmp_path / "run"; shutil.copytree(finished_run, run)
    ck = _latest(run)
    damage(ck)
    with pytest.raises((CheckpointError, ValueError, FileNotFoundError)) as e:
        if read == "resume": pretrain(tiny_cfg(max_steps=2, checkpoint_every=1), run, resume=True, progress=False)
        else: from_pretrained(ck)
    msg, f = str(e.value), (ck / file).resolve()
    assert words in msg and (str(f) in msg or (f.name in msg and str(f.parent) in msg)), msg
    if read == "resume":   # the way out is named too: the checkpoint still intact
        assert "step-00000001" in msg or name == "trainer-config-from-a-newer-version", msg

def test_a_checkpoint_without_config_json_still_resumes(finished_run, tmp_path):
    "Resuming needs model.safetensors and trainer.pt (which holds the config); a missing config.json only stops from_pretrained."
    from mosaiclab.train import pretrain
    run = tmp_path / "run"; shutil.copytree(finished_run, run)
    (_latest(run) / "config.json").unlink()
    assert pretrain(tiny_cfg(max_steps=2, checkpoint_every=1), run, resume=True, progress=False)["steps"] == 2

def test_cli_resume_of_a_run_from_a_newer_version_is_one_line(finished_run, tmp_path, capsys):
    from mosaiclab.cli import main
    run = tmp_path / "run"; shutil.copytree(finished_run, run)
    cfg = json.loads((run / "config.json").read_text()); cfg["ema_decay"] = 0.999
    (run / "config.json").write_text(json.dumps(cfg))
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 2          # 2: bad input
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(run / "config.json") in err[0] and "newer version" in err[0] and "ema_decay" in err[0], err

# ---------------------------------------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------------------------------------
def _assert_previous_checkpoint_kept(run: Path, step: int):
    from mosaiclab.train import read_checkpoint
    ck, _, state = read_checkpoint(run)
    assert ck.name == f"step-{step:08d}" and state["step"] == step
    assert _leftovers(run) == [], _leftovers(run)

def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    "The third checkpoint's weights file gets half written, then ENOSPC: one line says so, step 2 stays latest, resume ends the run."
    import safetensors.torch
    from mosaiclab.cli import main
    real, calls = safetensors.torch.save_file, []
    def full_disk(tensors, filename, *a, **k):
        calls.append(filename)
        if len(calls) == 3:
            real(tensors, filename, *a, **k); _truncate(Path(filename))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)
        return real(tensors, filename, *a, **k)
    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    run = tmp_path / "run"
    args = ["pretrain", "--out", str(run), "--max-steps", "4", "--no-progress", *TINY_SETS, "--set", "checkpoint_every=1"]
    assert main(args) == 1                                                                   # 1: the input was fine
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "step-00000003" in err[0], err
    assert "latest is still step-00000002" in err[0] and "MiB were free" in err[0], err
    _assert_previous_checkpoint_kept(run, 2)
    monkeypatch.setattr(safetensors.torch, "save_file", real)                                # space freed: resume
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    _assert_previous_checkpoint_kept(run, 4)

def test_real_writers_failing_mid_file_keep_the_previous_checkpoint(tmp_path):
    "safetensors and torch.save, stopped by a file size limit: their opaque errors become one message; step 2 stays latest."
    res = _drive("write-failures", tmp_path)
    # safetensors names the errno ("os error 27"); torch.save does not, and the disk is not full: EIO
    for name, want in (("model.safetensors", errno.EFBIG), ("trainer.pt", errno.EIO)):
        r = res[name]
        assert r["error_type"] == "OSError" and r["errno"] == want, (name, r)
        assert "could not write checkpoint step-00000003" in r["message"] and "latest is still step-00000002" in r["message"], r
        assert r["latest"] == [2, 0] and r["leftovers"] == [], (name, r)

def _mount_tmpfs(path: Path, size: int) -> bool:
    path.mkdir()
    try: return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError: return False

def test_a_really_full_disk_keeps_the_previous_checkpoint(finished_run, tmp_path, capsys):
    "A tmpfs with room for one checkpoint and a half: the second save fails with ENOSPC; needs permission to mount (root)."
    from mosaiclab.cli import main
    one = sum(f.stat().st_size for f in _latest(finished_run).iterdir())
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, one * 3 // 2): pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        run = disk / "run"
        assert main(["pretrain", "--out", str(run), "--max-steps", "3", "--no-progress", *TINY_SETS, "--set", "checkpoint_every=1"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "No space left on device" in err[0] and "latest is still step-00000001" in err[0], err
        _assert_previous_checkpoint_kept(run, 1)
    finally:
        subprocess.run(["umount", str(disk)], check=True)

# ---------------------------------------------------------------------------------------------------------------------
# DDP: interrupted by SIGTERM, resumed, equal to the uninterrupted run; FSDP resume
# ---------------------------------------------------------------------------------------------------------------------
TINY_SETS = ["--set", "model.d_model=32", "--set", "model.n_layers=2", "--set", "model.n_heads=2", "--set", "model.d_ff=48",
             "--set", "global_batch=8", "--set", "micro_batch=4", "--set", "eval_samples=16", "--set", "precision=fp32",
             "--set", "data.seq_len=32", "--set", "eval_every=0", "--set", "checkpoint_every=0", "--set", "log_every=1"]

def _free_port() -> int:
    import socket
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _torchrun(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
                             "-m", "mosaiclab.cli", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)

def _train_losses(run: Path) -> dict:
    from mosaiclab.train import read_metrics
    return {r["step"]: r["loss"] for r in read_metrics(run) if r["kind"] == "train"}

DDP_STEPS = 24

@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    "2 gloo processes: one run straight through; one SIGTERMed (torchrun, as a scheduler's preemption does) and resumed."
    t = tmp_path_factory.mktemp("ddp")
    args = ["pretrain", "--max-steps", str(DDP_STEPS), "--no-progress", *TINY_SETS]   # dropout on: each rank's RNG matters
    straight = _torchrun([*args, "--out", str(t / "straight")])
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, out[-3000:]
    p = _torchrun([*args, "--out", str(t / "split")])
    log, deadline = t / "split" / "metrics.jsonl", time.time() + 300
    while time.time() < deadline and p.poll() is None and not (log.exists() and log.read_text().count("\n") >= 3): time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    first, _ = p.communicate(timeout=300)
    stopped = json.loads((t / "split" / "summary.json").read_text())
    resumed = _torchrun(["pretrain", "--out", str(t / "split"), "--resume", "--no-progress"])
    second, _ = resumed.communicate(timeout=600)
    return dict(t=t, first=first, first_rc=p.returncode, stopped=stopped, second=second, second_rc=resumed.returncode)

def test_ddp_interrupted_and_resumed_equals_the_uninterrupted_run(ddp_runs):
    from safetensors.torch import load_file
    r = ddp_runs
    assert r["stopped"]["stopped_by"] == "SIGTERM" and 3 <= r["stopped"]["steps"] < DDP_STEPS, (r["stopped"], r["first"][-3000:])
    assert r["second_rc"] == 0, r["second"][-3000:]
    straight, split = _train_losses(r["t"] / "straight"), _train_losses(r["t"] / "split")
    assert sorted(split) == list(range(1, DDP_STEPS + 1)) and split == straight
    a, b = (load_file(str(r["t"] / n / "model" / "model.safetensors")) for n in ("straight", "split"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]

def test_fsdp_resume_is_refused_with_the_reason(ddp_runs):
    t = ddp_runs["t"]
    before = {str(f): f.read_bytes() for f in sorted((t / "split").rglob("*")) if f.is_file()}
    p = _torchrun(["pretrain", "--out", str(t / "split"), "--resume", "--no-progress", "--set", "distributed=fsdp"])
    out, _ = p.communicate(timeout=300)
    assert p.returncode != 0, out[-3000:]
    # one message from each rank; the two ranks share stderr, so their lines can interleave: count messages, not lines
    msgs = out.split("mosaiclab pretrain: error:")[1:]
    assert len(msgs) == 2, out[-3000:]
    assert all("optimizer state" in m and "torch.distributed.checkpoint" in m and "distributed='ddp'" in m for m in msgs), msgs
    assert before == {str(f): f.read_bytes() for f in sorted((t / "split").rglob("*")) if f.is_file()}

if __name__ == "__main__":          # the driver: python tests/test_faults.py NAME WORKDIR JSON-KWARGS
    name, work, kw = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    torch.set_num_threads(1)
    print(json.dumps(DRIVERS[name](work, **kw)))
