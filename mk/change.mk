# Slumps through time (issue 13): compare dated slump layers.
.PHONY: change bench-change

# Outside checks call this exact form: make change INPUTS="<layer1> <layer2> ..." OUTPUT=<gpkg> [DATES=d1,d2]
# Optional: DATE_FIELD=<field> MIN_OVERLAP=<share> MIN_RETREAT=<m> REPORT=<html> OVERWRITE=1.
change: setup
	@test -n "$(INPUTS)" -a -n "$(OUTPUT)" || { echo "usage: make change INPUTS=\"<layer1> <layer2> ...\" OUTPUT=<file.gpkg> [DATES=2019-07-15,2021-07-20] [DATE_FIELD=] [MIN_OVERLAP=0.1] [MIN_RETREAT=1] [REPORT=<html>] [OVERWRITE=1]"; exit 2; }
	$(TSM) change $(foreach input,$(INPUTS),"$(input)") --output "$(OUTPUT)" $(if $(DATES),--dates "$(DATES)") $(if $(DATE_FIELD),--date-field "$(DATE_FIELD)") $(if $(MIN_OVERLAP),--min-overlap "$(MIN_OVERLAP)") $(if $(MIN_RETREAT),--min-retreat "$(MIN_RETREAT)") $(if $(REPORT),--report "$(REPORT)") $(if $(OVERWRITE),--overwrite)

# 2,620 real outlines (Banks Island tiled ten times) against their grown copies; prints s and MB
bench-change: setup
	$(PY) tools/bench_change.py
