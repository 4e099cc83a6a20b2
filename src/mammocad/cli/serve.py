"""``mammocad serve``: the local web page of the second reader (layer serve)."""

from __future__ import annotations

from pathlib import Path

import click

from mammocad import DISCLAIMER
from mammocad.cli.common import app, build_command_configs, clean_errors
from mammocad.cli.infer import CONFIG_OPTION
from mammocad.serve.config import LOOPBACK_HOSTS, ServeConfig
from mammocad.utils.config import click_options
from mammocad.utils.quiet import third_party_warnings_hidden


@app.command("serve")
@CONFIG_OPTION
@click_options(ServeConfig)
@clean_errors
@third_party_warnings_hidden
def serve_command(config_file: Path | None, **flags) -> None:
    """A local web page: upload a mammogram and see its regions, or browse predictions.

    \b
    Upload a DICOM/PNG/PGM/JPEG/TIFF file to predict it with --classifier and --segmenter (or
    --baseline blob): the page shows the outlined regions beside the Grad-CAM map and a table of
    the regions (box, area, type, malignancy probability, suspicious). --predictions DIR lists the
    output of `mammocad predict` to view. Listens on 127.0.0.1 (this machine only) unless --host
    says otherwise; writes only into --work. Stop it with Ctrl-C.
    Example: mammocad serve --classifier mass.mcad --baseline blob --predictions predictions
    """
    import uvicorn

    from mammocad.serve.app import create_app

    (config,) = build_command_configs((ServeConfig,), config_file, flags)
    web = create_app(config)
    if config.host not in LOOPBACK_HOSTS:
        click.secho(f"warning: listening on {config.host}: other machines can upload images and read the results",
                    fg="yellow", err=True)
    host = f"[{config.host}]" if ":" in config.host else config.host
    click.echo(f"mammocad serve: http://{host}:{config.port}/ (work folder {config.work}). {DISCLAIMER}")
    uvicorn.run(web, host=config.host, port=config.port, log_level="warning")
