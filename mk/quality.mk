# Test quality (docs/testing.md): mutation testing of the pure charge logic and long
# property-test runs. Neither is part of `make test`.
.PHONY: mutants mutants-safety fuzz

FUZZ_TESTS := host_tests/test_session.py host_tests/test_native_core.py \
	host_tests/test_reflex_kernel.py host_tests/test_pilot_logic.py host_tests/test_proximity.py

# mutmut ([tool.mutmut] in pyproject.toml) mutates firmware/charge/*.py except controller.py
# in a copy under mutants/ and runs the fast CPython tests against each mutant, with the
# small "mutants" hypothesis profile. Every run starts afresh, so the score belongs to the
# code and tests as they are. MUTANTS='firmware.charge.watch*' limits a run to some mutants
# (mutmut's name patterns). Then: killed / checked, and the survivors by file
# (`.venv/bin/mutmut show NAME` prints one's diff). Slow: see docs/testing.md.
MUTANTS ?=
mutants: $(SETUP) mutants-mutmut mutants-safety

# The mutations mutmut cannot make (tools/mutate_safety.py): ticks_diff(a, b) -> a - b in each
# session module, each safety constant ten times larger and smaller. Each runs the session
# tests (CPython, then check_core/check_wrap on the unix port); prints killed or survived and
# the score. SAFETY_MUTANTS='LOCK_MS' limits the run to the names containing it.
SAFETY_MUTANTS ?=
mutants-safety: $(SETUP)
	@nice -n 5 $(PY) tools/mutate_safety.py -k "$(SAFETY_MUTANTS)"

.PHONY: mutants-mutmut
mutants-mutmut: $(SETUP)
	rm -rf mutants
	@mkdir -p build
	@echo "mutants: mutmut run $(MUTANTS) (log: build/mutmut-run.log)"
	@WALLBOX_HYPOTHESIS=mutants $(PY) -m mutmut run $(MUTANTS) > build/mutmut-run.log 2>&1 \
		|| { tail -n 40 build/mutmut-run.log; exit 1; }
	@$(PY) -m mutmut results --all=true > build/mutmut-results.txt 2>/dev/null
	@awk -F': ' 'NF == 2 && $$2 != "not checked" { n++; st[$$2]++ } \
		END { k = st["killed"] + st["timeout"]; \
			printf "mutation score: %d killed / %d total (%.1f %%)\n", k, n, n ? 100 * k / n : 0; \
			printf "surviving: %d", n - k; \
			if (st["timeout"]) printf " (%d more killed by timeout)", st["timeout"]; \
			if (st["no tests"]) printf " (%d reached by no test)", st["no tests"]; \
			printf "\n" }' build/mutmut-results.txt
	@awk -F': ' 'NF == 2 && $$2 != "killed" && $$2 != "timeout" && $$2 != "not checked" { \
			name = $$1; sub(/^ +/, "", name); f = name; sub(/\.x[_ǁ].*/, "", f); \
			gsub(/\./, "/", f); print f ".py", name, $$2 }' build/mutmut-results.txt \
		| sort -k1,1 -k2,2V | awk '$$1 != f { f = $$1; print "  " f ":" } \
			{ s = $$3; for (i = 4; i <= NF; i++) s = s " " $$i; print "    " $$2 " (" s ")" }'

# Property tests with the "fuzz" hypothesis profile: random, 5000 examples each, failures
# kept in build/hypothesis and replayed first on the next run.
fuzz: $(SETUP)
	WALLBOX_HYPOTHESIS=fuzz $(PY) -m pytest -q $(FUZZ_TESTS)
	# OCPP power cuts: 100 random runs from a new seed (printed; WB_POWERCUT_SEED replays it)
	WB_POWERCUT_RUNS=100 WB_POWERCUT_SEED=$$(date +%s) $(PY) -m pytest -q -rxX \
		host_tests/test_ocpp_powercut.py -k random_power_cuts
	# OTA: kill -9 at 12 random moments of an update's download and install (new seed, printed)
	WB_OTA_KILL_RUNS=12 WB_OTA_KILL_SEED=$$(date +%s) $(PY) -m pytest -q -s \
		host_tests/test_ota_kill.py -k random
	# OCPP fuzz: 50,000 hostile frames from a random seed (printed; --seed S replays it)
	$(PY) tools/ocpp_fuzz.py --frames 50000
	# OCPP legal-but-unusual answers and CALLs: 50,000 from a random seed (printed; --seed S)
	$(PY) tools/ocpp_legal_fuzz.py --messages 50000
	# HTTP server: 2000 hostile requests from a random seed (printed; --seed S replays it)
	$(PY) tools/web_fuzz.py --requests 2000
	# HTTP server in-process on the unix port: 20,000 requests, 4 at once, from a random seed
	# (printed; WB_WEB_FUZZ_SEED=S replays it)
	$(PY) tools/build.py --out build/mpy
	WB_WEB_FUZZ_N=20000 WB_WEB_FUZZ_SEED=$$(date +%s) MICROPYPATH=$(CURDIR)/build/mpy:.frozen \
		$(VENV)/bin/micropython host_tests/mpy/check_web_fuzz.py | tee build/web-fuzz.log
	@grep -q "DONE 0 failed" build/web-fuzz.log
	# ... and 5000 on the 32-bit build where `make mp32` made it (its smaller stack and heap)
	@if [ -x build/mp32/micropython ]; then \
		WB_WEB_FUZZ_N=5000 WB_WEB_FUZZ_SEED=$$(date +%s) \
		MICROPYPATH=$(CURDIR)/build/mpy:.frozen build/mp32/micropython \
		host_tests/mpy/check_web_fuzz.py | tee build/web-fuzz32.log; \
		grep -q "DONE 0 failed" build/web-fuzz32.log; fi
