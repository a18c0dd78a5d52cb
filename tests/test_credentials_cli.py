"""`edge credentials ...`: import, list, show, revoke, issue, with readable output and sysexits codes."""

from __future__ import annotations

import threading
import time

import pytest

from edge.cli import main
from edge.hil.card_sim import CardReaderSim
from edge.hil.pty import pty_pair

from conftest import building

pytestmark = pytest.mark.timeout(60)

ROWS = """serial,tenant,valid_from,valid_until,paid_through,door_groups
01001293D8,t-101,2024-01-01,2099-12-31,2099-01-31,entrances
0100AB12CD,t-102,2024-01-01,2099-12-31,2099-01-31,entrances;garage
zz,t-103,2024-01-01,2099-12-31,2099-01-31,entrances
0100000001,t-104,2025-01-01,2024-12-31,2099-01-31,entrances
"""


def test_import_reports_bad_rows_by_line_and_exits_65(write_config, building_dir, capsys):
    config = write_config(building())
    (building_dir / "tenants.csv").write_text(ROWS)
    assert main(["credentials", "import", str(building_dir / "tenants.csv"), "--config", str(config)]) == 65
    out, err = capsys.readouterr()
    assert "imported 2 credential(s)" in out and "2 row(s) refused" in out
    assert "tenants.csv:4: serial: Value error, card serial must be hex digits" in err
    assert "tenants.csv:5:" in err and "before valid_from" in err
    assert "01001293D8" not in out + err, "raw serials never appear"

    assert main(["credentials", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "t-101" in listing and "t-102" in listing and "@garage" in listing and "(2 credential(s)" in listing


def test_show_revoke_by_key_prefix(write_config, building_dir, capsys):
    config = write_config(building())
    (building_dir / "tenants.csv").write_text(ROWS.splitlines()[0] + "\n" + ROWS.splitlines()[1] + "\n")
    assert main(["credentials", "import", str(building_dir / "tenants.csv"), "--config", str(config)]) == 0
    capsys.readouterr()
    main(["credentials", "list", "--config", str(config)])
    key = capsys.readouterr().out.splitlines()[1].split()[0]
    assert main(["credentials", "show", key[:8], "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "tenant        t-101" in shown and "status        active" in shown
    assert main(["credentials", "revoke", key, "--config", str(config)]) == 0
    assert f"revoked {key}" in capsys.readouterr().out
    main(["credentials", "show", key, "--config", str(config)])
    assert "status        revoked" in capsys.readouterr().out
    assert main(["credentials", "show", "ffffffffffff", "--config", str(config)]) == 65
    assert "no credential with key" in capsys.readouterr().err


def test_issue_from_hex_and_from_a_desk_reader(write_config, capsys):
    config = write_config(building())
    common = ["--tenant", "t-201", "--valid-from", "2024-01-01", "--valid-until", "2099-01-01",
              "--paid-through", "2099-01-01", "--group", "entrances", "--config", str(config)]
    assert main(["credentials", "issue", "--serial", "01:00:12:93:D8", "--pin", "2468"] + common) == 0
    issued = capsys.readouterr().out
    assert "PIN           set" in issued
    with pty_pair() as desk:
        def present() -> None:
            time.sleep(0.5)
            with CardReaderSim(desk.a, "em4100") as reader:
                reader.present(b"\x02\x00\x00\x00\x09")

        presenter = threading.Thread(target=present, daemon=True)
        presenter.start()
        assert main(["credentials", "issue", "--reader-port", desk.b, "--wait", "10"] + common) == 0
        presenter.join()
    main(["credentials", "list", "--config", str(config)])
    assert "(2 credential(s)" in capsys.readouterr().out
    assert main(["credentials", "issue", "--serial", "nothex"] + common) == 65
    assert main(["credentials", "issue", "--serial", "0102", "--pin", "12"] + common) == 65
    assert "pin" in capsys.readouterr().err


def test_config_and_store_problems_have_their_own_exit_codes(write_config, building_dir, capsys):
    broken = write_config({"building": {"id": "x"}}, name="broken.yaml")
    assert main(["credentials", "list", "--config", str(broken)]) == 78
    config = write_config(building())
    (building_dir / "state").mkdir()
    (building_dir / "state" / "credentials.db").write_bytes(b"\x00garbage" * 200)
    assert main(["credentials", "list", "--config", str(config)]) == 74
    assert "credential store" in capsys.readouterr().err
