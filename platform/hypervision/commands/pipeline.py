"""`hypervision worker`, `hypervision receive`, `hypervision beat`, `hypervision simulate`:
the pipeline's processes, each in the foreground (a supervisor or the demo runs them);
`hypervision supervise` runs them under supervisord (hypervision.supervise)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Annotated

import typer

from hypervision.commands.common import (
    Yes,
    catalogue_or_exit,
    confirm_or_exit,
    console,
    exit_on_errors,
    fail,
    settings_or_exit,
)


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        concurrency: Annotated[
            int | None, typer.Option(help="Processes (HV_WORKER_CONCURRENCY).")
        ] = None,
        loglevel: str = "info",
        queues: Annotated[
            str, typer.Option(help="Comma-separated queues to consume: ingest, jobs.")
        ] = "ingest,jobs",
    ) -> None:
        """Run a Celery worker, by default on both the `ingest` and `jobs` queues."""
        settings = settings_or_exit()
        from hypervision.celery_app import app as celery_app
        from hypervision.jobs import task_modules

        celery_app.conf.include = task_modules()
        celery_app.worker_main([
            "worker", "-Q", queues, "-c", str(concurrency or settings.worker_concurrency),
            "--loglevel", loglevel, "-n", f"{queues.split(',')[0]}-{int(time.time())}@%h",
            "--without-mingle", "--without-gossip",
        ])

    @app.command("beat")
    def beat(loglevel: str = "info") -> None:
        """Run Celery beat: the platform's periodic jobs (see hypervision.jobs)."""
        settings = settings_or_exit()
        from hypervision.celery_app import app as celery_app
        from hypervision.jobs import collect_schedule

        celery_app.conf.beat_schedule = collect_schedule()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        celery_app.Beat(loglevel=loglevel,
                        schedule=str(settings.data_dir / "celerybeat-schedule")).run()

    @app.command("forget-receiver")
    def forget_receiver(
        client_id: Annotated[str, typer.Argument(help="The receiver's HV_MQTT_CLIENT_ID.")],
        yes: Yes = False,
    ) -> None:
        """Drop a receiver's persistent session in Mosquitto, and the events queued in it:
        for a receiver stopped for good (with HV_MQTT_SHARED_GROUP, its share of the
        events is queued for it until it returns)."""
        from ingest.receive import forget_session

        settings = settings_or_exit()
        confirm_or_exit(yes, f"drop the MQTT session {client_id!r} and what it holds")
        with exit_on_errors(OSError):
            forget_session(settings, client_id)
        console.print(f"- MQTT session {client_id} dropped")

    @app.command("receive")
    def receive(
        http: Annotated[
            bool, typer.Option(help="Also serve the HTTP integration endpoint.")
        ] = True,
    ) -> None:
        """Run the receivers: MQTT (and the HTTP integration endpoint) into Celery batches."""
        import uvicorn

        from ingest.batcher import Batcher
        from ingest.receive import MqttReceiver, celery_sender, subscription
        from ingest.receive_http import make_app

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        settings = settings_or_exit()
        send = celery_sender(settings)
        mqtt_receiver = MqttReceiver(
            settings, Batcher(send, settings.batch_size, settings.batch_max_wait).start()
        )
        try:
            mqtt_receiver.start()
        except RuntimeError as exc:
            raise fail(str(exc)) from None
        console.print(f"receiving MQTT from {settings.mqtt_host}:{settings.mqtt_port}"
                      f" ({subscription(settings)})")
        if http and settings.http_integration_token is None:
            console.print("HTTP integration off: HV_HTTP_INTEGRATION_TOKEN is not set (it"
                          " accepts events only from a client sending that token)")
            http = False
        try:
            if http:
                http_batcher = Batcher(send, settings.batch_size, settings.batch_max_wait).start()
                console.print(f"HTTP integration on http://{settings.http_host}:{settings.http_port}"
                              "/chirpstack?event=up")
                uvicorn.run(make_app(settings, http_batcher), host=settings.http_host,
                            port=settings.http_port, log_level="warning")
                http_batcher.stop()
            else:
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                with contextlib.suppress(KeyboardInterrupt):
                    stop.wait()
        finally:
            mqtt_receiver.stop()
            console.print(f"receiver stopped after {mqtt_receiver.received} messages")

    @app.command("supervise")
    def supervise(
        only: Annotated[str, typer.Option(
            help="Comma-separated programs to run: worker, receiver, beat.")
        ] = "worker,receiver,beat",
    ) -> None:
        """Run the worker, the receiver and beat under supervisord, in the foreground: a
        process that exits or is killed is started again. Ctrl-C or SIGTERM stops them all."""
        from hypervision import supervise as supervisor

        settings = settings_or_exit()
        programs = [name.strip() for name in only.split(",") if name.strip()]
        try:
            argv = supervisor.command(settings, programs)
        except ValueError as exc:
            raise fail(str(exc)) from None
        conf = supervisor.config_path(settings)
        console.print(f"supervising {', '.join(programs)}; logs in {settings.data_dir / 'log'}")
        console.print(f"status: {argv[0]} -m supervisor.supervisorctl -c {conf} status")
        # supervisord takes this process's place, so signals reach it directly.
        sys.stdout.flush()
        os.execv(argv[0], argv)

    @app.command("simulate")
    def simulate(
        rate: Annotated[float, typer.Option(help="Uplinks per second.")] = 20.0,
        total: Annotated[int | None, typer.Option(help="Stop after this many uplinks.")] = None,
        seed: int = 1,
    ) -> None:
        """Publish simulated ChirpStack events for the devices declared under tenants/."""
        from hypervision.demo import publish_stream
        from hypervision.simulator import Simulator
        from hypervision.tenancy.spec import load_dir

        settings = settings_or_exit()
        simulator = Simulator(load_dir(settings.tenants_dir), catalogue_or_exit(), seed=seed)
        stop = threading.Event()
        try:
            sent = publish_stream(settings, simulator.stream(total), rate, stop)
        except KeyboardInterrupt:
            stop.set()
            sent = -1
        console.print(f"published {sent} events" if sent >= 0 else "stopped")
