# Plots of simulated days (tools/plot.py, docs/sim.md "Plots"): each scenario runs on the
# simulated wallbox (the real firmware on the unix port, without OCPP) and its observation
# log becomes docs/img/<name>.png, the pictures the README shows (~6 min in all).
PLOTS := pv_day fuse_evening

.PHONY: plots
plots: $(SETUP)
	@mkdir -p build/plots docs/img
	@for s in $(PLOTS); do \
	  echo "plots: scenarios/$$s.json"; \
	  $(PY) tools/sim.py --scenario scenarios/$$s.json --events build/plots/$$s.jsonl \
	    --no-csms > build/plots/$$s.txt || { cat build/plots/$$s.txt; exit 1; }; \
	  $(PY) tools/plot.py build/plots/$$s.jsonl -o docs/img/$$s.png \
	    --title "scenarios/$$s.json on the simulated wallbox" || exit 1; \
	done
