"""Register on arrival: a GA 467 resident-ID card on a socat pty pair to an issued or renewed credential."""

from __future__ import annotations

import threading
import time

import pytest
import serial

from edge.drivers.cards.ga467 import encode_basic_info, encode_reply
from edge.drivers.cards.ga467_desk import Ga467Desk
from edge.config import building as building_config
from edge.doors.credentials.store import CredentialStore
from edge.cli import main
from edge.doors.wiring import credentials_path
from edge.hil.card_sim import CardReaderSim
from edge.hil.ga467_sim import SimulatedIdReader
from edge.hil.pty import pty_pair
from edge.hil.waiting import until_sync

from conftest import building

pytestmark = pytest.mark.timeout(60)

ID_NUMBER = "11010519491231002X"  # the example number of GB 11643-1999
NAME = "张三"
CARD = "0100AB12CD"


def _config(write_config, desk_port: str):
    return write_config(building({"readers": [{"name": "desk", "protocol": "ga467", "port": desk_port, "baud": 115200},
                                              {"name": "front-reader", "protocol": "em4100", "port": "/dev/null"}]}))


def _dates(config, valid_until: str = "2099-01-01") -> list[str]:
    return ["--valid-from", "2024-01-01", "--valid-until", valid_until, "--paid-through", "2030-01-31",
            "--group", "entrances", "--config", str(config), "--wait", "10"]


def _present_later(action) -> threading.Thread:
    """A person at the desk: the card arrives once the command is waiting for it."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def test_the_desk_reads_the_id_card_then_issues_and_renews_with_the_store_s_hash(write_config, capsys):
    with pty_pair() as desk, pty_pair() as cards, SimulatedIdReader(desk.a) as id_reader:
        config_path = _config(write_config, desk.b)
        config = building_config.load(config_path)

        def access_card_after_id() -> None:
            until_sync(lambda: (0x30, 0x01) in id_reader.requests, 10, "the ID card read first", every_s=0.02)
            time.sleep(0.3)
            with CardReaderSim(cards.a, "em4100") as reader:
                reader.present(bytes.fromhex(CARD))

        id_reader.place(NAME, ID_NUMBER)
        presenter = _present_later(access_card_after_id)
        assert main(["credentials", "issue", "--reader", "desk", "--reader-port", cards.b, "--tenant", "t-301"] + _dates(config_path)) == 0
        presenter.join()
        issued = capsys.readouterr()
        id_reader.remove()
        _present_later(lambda: (time.sleep(0.5), id_reader.place(NAME, ID_NUMBER)))
        assert main(["credentials", "issue", "--reader", "desk"] + _dates(config_path, "2100-06-30")) == 0  # renew
        renewed = capsys.readouterr()

    with CredentialStore.open(credentials_path(config), config.building.secret.read()) as store:
        [credential] = store.list()
        store_key, store_id_key = store.key_for(bytes.fromhex(CARD)), store.id_key_for(ID_NUMBER)
    assert credential.key == store_key and credential.id_key == store_id_key, "hashed the way the store hashes"
    assert credential.id_last4 == "002X" and credential.tenant == "t-301"
    assert str(credential.valid_until) == "2100-06-30", "renewed with the new lease"
    assert "issued" in issued.out and "renewed" in renewed.out
    for shown in (issued.out + issued.err, renewed.out + renewed.err):
        assert ID_NUMBER not in shown and NAME not in shown and CARD not in shown.upper()


def test_the_desk_refuses_what_it_cannot_use(write_config, capsys):
    with pty_pair() as desk, SimulatedIdReader(desk.a) as id_reader:
        config_path = _config(write_config, desk.b)
        id_reader.place(NAME, ID_NUMBER)
        assert main(["credentials", "issue", "--reader", "desk"] + _dates(config_path)) == 65  # nobody holds it yet
        assert "no credential holds this ID card" in capsys.readouterr().err
        id_reader.place(NAME, "110105194912310021")  # wrong check character
        assert main(["credentials", "issue", "--reader", "desk", "--serial", CARD, "--tenant", "t"] + _dates(config_path)) == 65
        err = capsys.readouterr().err
        assert "GB 11643" in err and "110105194912310021" not in err
        assert main(["credentials", "issue", "--reader", "front-reader"] + _dates(config_path)) == 64
        assert "takes a ga467 reader" in capsys.readouterr().err
        id_reader.remove()
        assert main(["credentials", "issue", "--reader", "desk"] + _dates(config_path)[:-1] + ["0.5"]) == 65
        assert "no ID card read" in capsys.readouterr().err


def test_a_desk_session_survives_noise_and_a_cut_short_reply():
    with pty_pair() as line:
        with serial.Serial(line.a, 115200, timeout=0.05) as reader_end, Ga467Desk(line.b, reply_s=0.3) as desk:
            answers = [
                b"\x00\xff" * 20 + encode_reply(0, 0, 0x9F, bytes(4)),  # noise, then card found
                encode_reply(0, 0, 0x90, bytes(8))[:-3],  # select reply cut short: the session starts again
                encode_reply(0, 0, 0x9F, bytes(4)),
                encode_reply(0, 0, 0x90, bytes(8)),
            ]
            answers.append(encode_reply(0, 0, 0x90, encode_basic_info(NAME, ID_NUMBER)))

            def reader() -> None:
                for answer in answers:
                    until_sync(lambda: reader_end.in_waiting, 5, "the desk's request", every_s=0.005)
                    reader_end.read(reader_end.in_waiting)
                    reader_end.write(answer)

            thread = _present_later(reader)
            identity = desk.read_identity(10)
            thread.join()
    assert identity.id_number == ID_NUMBER and identity.name == NAME
