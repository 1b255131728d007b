"""Serve a train run (and its base model) on Ray Serve: the OpenAI-compatible API, /predict, /validate.

    python -m ray_jobs.serve                                  # runs/tiny (the embedded default's run) + its base
    python -m ray_jobs.serve run=qwen-plan port=8080 app.autoscaling.max_replicas=4
    python -m ray_jobs.serve run=null app.base_model=/models/qwen app.models='[{name: a, path: /adapters/a}]'
    serve run serve/serve_config.yaml                         # the same application from a Serve config file

The run's weights (``runs/<run>/adapter`` on its base, or a full fine-tune's ``model/``) are served under the
run's name beside the untrained base (``base``); ``app`` holds every other setting (``serve/config.py``). Serve
listens on ``host:port`` (loopback by default) until interrupted; ``blocking=false`` returns once it answers.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from pipelines import storage
from ray_jobs.common import RayConfig, attach, parse_args, setup_logging
from schemas.config import Strict

logger = logging.getLogger("tfpredict.serve")


class ServeJobConfig(Strict):
    output_dir: str = "data"
    run: str | None = "tiny"  # runs/<run> under output_dir, served under its name; None: app.models only
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    name: str = "tfpredict"  # the Serve application
    blocking: bool = True
    app: dict[str, Any] = {}  # serve.config.AppArgs fields (base_model defaults to the run's base)
    ray: RayConfig = RayConfig()


def app_args(cfg: ServeJobConfig) -> Any:
    """The application's arguments: the run (if any) first among ``app.runs``, then the rest of ``cfg.app``."""
    from serve.config import AppArgs

    args: dict[str, Any] = dict(cfg.app)
    if cfg.run is not None:
        out = cfg.output_dir if storage.is_uri(cfg.output_dir) else str(Path(cfg.output_dir).resolve())
        args["runs"] = [storage.join(out, "runs", cfg.run), *args.get("runs", [])]
    try:
        return AppArgs(**args).with_runs()
    except FileNotFoundError as e:
        raise SystemExit(f"serve: {e}, or set run=null and app.base_model") from None
    except ValidationError as e:
        raise SystemExit(f"serve: app settings: {e}") from None


def run(cfg: ServeJobConfig) -> str:
    """Deploy the application; the URL it answers on."""
    from ray import serve

    from serve.app import build_app

    cfg.output_dir = attach(cfg.ray, cfg.output_dir)
    args = app_args(cfg)
    serve.start(proxy_location="HeadOnly", http_options={"host": cfg.host, "port": cfg.port})
    serve.run(build_app(args), name=cfg.name, route_prefix="/")
    url = f"http://{cfg.host}:{cfg.port}"
    names = [args.base_name, *(m.name for m in args.models)]
    print(f"tfpredict serving {', '.join(names)} at {url}  (/v1, /predict, /validate, /health, /metrics)")
    auth = f' -H "Authorization: Bearer ${args.api_key_env}"' if os.environ.get(args.api_key_env) else ""
    print(f"  try: curl -s{auth} {url}/v1/models")
    return url


def wait() -> None:
    """Serve until interrupted, then shut the application down."""
    from ray import serve

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    cfg = parse_args(ServeJobConfig, argv, __doc__ or "", None)
    run(cfg)
    if cfg.blocking:
        wait()


if __name__ == "__main__":
    main()
