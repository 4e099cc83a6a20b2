# Two entry points (see README): `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mammocad demo

# The report's browser test drives Debian's chromium (never a downloaded browser). Installed here
# only when /usr/bin/chromium is absent; without root (or apt) the test is skipped with its reason.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		{ $$SUDO apt-get update -qq && $$SUDO apt-get install -y chromium chromium-driver; } \
			|| echo "chromium could not be installed: the report's browser test will be skipped"; \
	fi

# pytest exits 5 when it collects no test: treat that as a failure CI can see, not a silent pass.
test: $(STAMP) browser
	$(VENV)/bin/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; fi; exit $$rc

clean:
	rm -rf $(VENV) demo-output .pytest_cache
