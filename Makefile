# Two commands set up everything on a fresh machine:
#   make run   - create .venv, install flowcap, start the collector (UDP 23456, ./flows)
#   make test  - create .venv, install flowcap with its test extra, lint, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test run lint bench clean install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .

run: $(STAMP)
	exec $(BIN)/flowcapd

bench: $(STAMP)
	$(BIN)/python -m bench decode

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# make install (as root): flowcap into $(PREFIX)/venv (a venv of its own, with its
# dependencies), the systemd unit into $(UNIT_DIR), the example config into
# $(CONFIG_DIR) unless one is there. Starts nothing; then:
#   systemctl daemon-reload && systemctl enable --now flowcapd
# DESTDIR=/stage puts the same files below /stage and touches nothing outside it (the
# staged scripts already name $(PREFIX), where they will run).
PREFIX ?= /opt/flowcap
UNIT_DIR ?= /etc/systemd/system
CONFIG_DIR ?= /etc/flowcap
PIP_INSTALL_FLAGS ?=
INSTALL_VENV = $(DESTDIR)$(PREFIX)/venv

install:
	$(PYTHON) -m venv $(INSTALL_VENV)
	$(INSTALL_VENV)/bin/python -m pip install -q --no-cache-dir $(PIP_INSTALL_FLAGS) .
	if [ -n "$(DESTDIR)" ]; then \
		grep -lI '$(INSTALL_VENV)' $(INSTALL_VENV)/bin/* | xargs -r sed -i 's|$(INSTALL_VENV)|$(PREFIX)/venv|g'; \
	fi
	install -d $(DESTDIR)$(UNIT_DIR) $(DESTDIR)$(CONFIG_DIR) $(DESTDIR)$(PREFIX)/share/doc
	sed 's|/opt/flowcap/|$(PREFIX)/|g; s|/etc/flowcap/|$(CONFIG_DIR)/|g' systemd/flowcapd.service \
		> $(DESTDIR)$(UNIT_DIR)/flowcapd.service
	chmod 0644 $(DESTDIR)$(UNIT_DIR)/flowcapd.service
	test -e $(DESTDIR)$(CONFIG_DIR)/flowcapd.toml || \
		install -m 0644 systemd/flowcapd.toml $(DESTDIR)$(CONFIG_DIR)/flowcapd.toml
	for doc in README.md docs/*.md; do \
		if [ -f "$$doc" ]; then install -m 0644 "$$doc" $(DESTDIR)$(PREFIX)/share/doc/; fi; \
	done
