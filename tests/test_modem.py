"""The AT modem driver against the modem simulator over a socat pty pair, and the PDU codec."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.drivers.modem.at import AtModem, ModemError, NoAnswer, NoNetwork, SimLocked
from edge.drivers.modem.pdu import decode_submit, parse_status_report, submit_pdus
from edge.hil.modem_sim import Mode, ModemSimulator, status_report_pdu
from edge.hil.pty import pty_pair
from edge.hil.waiting import until_sync


def test_pin_signal_registration_a_long_chinese_message_and_its_delivery_reports():
    with pty_pair() as (ours, theirs), ModemSimulator(theirs, pin="4321") as modem:
        driver = AtModem(ours, timeout_s=2.0, pin="4321")
        status = driver.open()
        assert status.signal == 21 and status.registration == 1
        text = "【test-house】烟雾报警：unit-301 room-301，3号楼301室请立即查看。" * 4
        references = driver.send("+8613800000001", text)
        assert len(references) == 3, "UCS2: 67 characters a part"
        reports = []

        def three_reports() -> bool:
            reports.extend(driver.poll())
            return len(reports) >= 3

        until_sync(three_reports, 5, "three status reports", every_s=0)
        driver.close()
    assert modem.messages[0].text == text and modem.messages[0].number == "+8613800000001"
    assert sorted(r.reference for r in reports) == sorted(references) and all(r.delivered for r in reports)


def test_a_wrong_or_missing_pin_is_a_clear_error():
    with pty_pair() as (ours, theirs), ModemSimulator(theirs, pin="4321"):
        with pytest.raises(SimLocked, match="no PIN is configured"):
            AtModem(ours, timeout_s=2.0).open()
        with pytest.raises(ModemError, match="CME ERROR: 16"):
            AtModem(ours, timeout_s=2.0, pin="0000").open()


@pytest.mark.parametrize("mode, error, says", [
    (Mode.ERROR, ModemError, "CMS ERROR: 500"),
    (Mode.NO_NETWORK, NoNetwork, "not registered"),
    (Mode.SILENT, NoAnswer, "no answer"),
    (Mode.UNCONFIRMED, NoAnswer, "within 0.5 s"),
])
def test_a_modem_that_refuses_has_no_network_or_says_nothing(mode, error, says):
    with pty_pair() as (ours, theirs), ModemSimulator(theirs) as modem:
        driver = AtModem(ours, timeout_s=0.5)
        driver.open()
        modem.mode = mode
        with pytest.raises(error, match=says):
            if mode is Mode.NO_NETWORK:
                driver.status()
            driver.send("+8613800000001", "烟雾报警")
        driver.close()
    assert not modem.messages


def test_a_submit_confirmed_later_than_the_configured_timeout_is_no_answer():
    """Every wait honours timeout_s, the submit's confirmation too (it used to wait at least 60 s)."""
    with pty_pair() as (ours, theirs), ModemSimulator(theirs, confirm_after_s=2.0) as modem:
        driver = AtModem(ours, timeout_s=0.5)
        driver.open()
        with pytest.raises(NoAnswer, match="within 0.5 s"):
            driver.send("+8613800000001", "烟雾报警")
        driver.close()
    assert modem.submitted == ["+8613800000001"], "the PDU went in; only its confirmation came too late"


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=400), st.from_regex(r"\+?[0-9]{3,15}", fullmatch=True), st.integers(0, 255))
def test_any_text_survives_the_pdu_round_trip(text, number, reference):
    parts = [decode_submit(pdu.hex) for pdu in submit_pdus(number, text, reference)]
    assert {p[0] for p in parts} == {number}
    assert "".join(p[1] for p in parts) == text
    if len(parts) > 1:
        assert [p[2] for p in parts] == [(reference, len(parts), i) for i in range(1, len(parts) + 1)]
    assert all(len(pdu.hex) // 2 - 1 == pdu.length for pdu in submit_pdus(number, text, reference))


def test_a_status_report_is_read_back():
    report = parse_status_report(status_report_pdu(200, "+8613800000001", status=0x41))
    assert report.reference == 200 and report.number == "+8613800000001" and not report.delivered
    with pytest.raises(ValueError):
        parse_status_report(submit_pdus("+8613800000001", "x", 1)[0].hex)
