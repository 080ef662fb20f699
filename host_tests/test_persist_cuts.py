"""Power cuts at every step of every persistent write (host_tests/persist_scenarios.py on the
simulated flash of host_tests/flashsim.py): what boots is the old or the new value, never
nothing, never garbage, never an exception; a save that returned survives the cut."""
import pytest

import persist_scenarios as ps


@pytest.mark.parametrize("scenario", ps.SCENARIOS, ids=[s[0] for s in ps.SCENARIOS])
def test_power_cut_at_every_step(scenario):
    tried, problems = ps.run(scenario)
    assert tried > 6
    assert not problems, "\n".join(problems[:12])
