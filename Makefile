# Set-up is part of every target: a fresh machine needs only python3 (3.11+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED := ../shared/captures
BENCH_CAPTURES ?= $(SHARED)/modbus/iti_ModbusTCP_large.pcap $(SHARED)/s7comm/s7comm_varservice_libnodavedemo_bench.pcap \
	$(SHARED)/enip/quickdraw_CL5000EIP-Firmware_Change.pcap $(SHARED)/mixed/zeek_modbusBig.pcap

.PHONY: demo test bench clean

$(BIN)/sorf: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "sorf needs Python 3.11 or newer"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: on Debian, run 'apt-get install python3-venv'"; exit 1; }
	@echo "installing sorf and its test dependencies into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e '.[test]'; } > $(VENV)/install.log 2>&1 \
		|| { tail -20 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $@

demo: $(BIN)/sorf
	@rm -f demo.duckdb demo.duckdb.wal
	$(BIN)/sorf ingest captures/demo-plant.pcap --db demo.duckdb
	$(BIN)/sorf analyse --db demo.duckdb --zones captures/demo-zones.yaml --format table

test: $(BIN)/sorf
	$(BIN)/python -m pytest -q

bench: $(BIN)/sorf
	$(BIN)/python -m sensor.bench $(BENCH_CAPTURES)
	$(BIN)/python -m analyser.bench

clean:
	rm -rf $(VENV) demo.duckdb demo.duckdb.wal .pytest_cache *.egg-info
