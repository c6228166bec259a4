"""Run the embedded demo: database, demo accounts and case, web server, ingest worker and a GPU-queue worker.

Started by `make demo` (which provides REDIS_URL). Ctrl-C stops everything this command started.
Without real weights (OMNIPATH_MODEL left at its default under var/), a tiny randomly initialised
OmniPath checkpoint is created there once; its answers are flagged `demo_weights` (noise, not a diagnosis).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from webapp.accounts.models import Department, Role, User
from webapp.analysis.catalog import configured_model
from webapp.cases.models import Case, Priority
from webapp.wsi.models import Slide
from webapp.wsi.services import add_slide_from_path

DEMO_SLIDE_SIZE = (24000, 18000)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Set up demo data and run the web server, an ingest worker and a GPU-queue worker (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
        parser.add_argument("--setup-only", action="store_true", help="prepare the data, start nothing")

    def handle(self, *args, host: str, port: int, setup_only: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        department, _ = Department.objects.get_or_create(code="demo", defaults={"name": "Demo Histopathology"})
        passwords = {
            "admin": self._account("admin", Role.ADMIN, department, superuser=True),
            "pathologist": self._account("pathologist", Role.PATHOLOGIST, department),
        }
        case, _ = Case.objects.get_or_create(
            department=department,
            accession_number="DEMO-0001",
            defaults={
                "patient_pseudonym": "PT-DEMO",
                "organ": "colon",
                "clinical_notes": "Generated demo slide (synthetic texture, not a patient).",
                "priority": Priority.URGENT,
            },
        )
        if not Slide.objects.filter(case=case).exists():
            add_slide_from_path(case, self._demo_slide(), filename="demo-colon.svs")
        self._model()
        from rest_framework.authtoken.models import Token

        token, _ = Token.objects.get_or_create(user=User.objects.get(username="pathologist"))
        slide = Slide.objects.filter(case=case).first()

        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\nPathDesk demo on {url}"))
        for username, password in passwords.items():
            self.stdout.write(f"  {username:<12} password: {password}")
        self.stdout.write(f"  API docs: {url}api/docs/   (Ctrl-C stops the demo)")
        self.stdout.write(f"  Ask OmniPath ({configured_model().name}) and watch the answer stream:\n"
                          f"    {sys.executable} webapp/analysis/client.py --url {url.rstrip('/')} --token {token.key} "
                          f"--slide {slide.pk} --task cancer_detection \"Is there invasive carcinoma?\"\n")
        if not setup_only:
            self._run(host, port)

    def _account(self, username: str, role: str, department: Department, *, superuser: bool = False) -> str:
        user, _ = User.objects.get_or_create(username=username)
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.is_superuser = user.is_staff = superuser
        user.save()
        user.departments.add(department)
        user.set_role(role)
        return password

    def _demo_slide(self) -> Path:
        from slides.synth import write_pyramidal_tiff

        path = Path(settings.VAR_DIR) / "demo" / "demo-colon.svs"
        if not path.exists():
            self.stdout.write("Generating the demo slide (once)…")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            write_pyramidal_tiff(tmp, DEMO_SLIDE_SIZE, mpp=0.25, aperio=True, objective_power=40, jpeg_tables=True)
            tmp.rename(path)
        return path

    def _model(self) -> None:
        """The checkpoint GPU workers load: a tiny random one is created once when none is configured."""
        model_dir = Path(settings.OMNIPATH_MODEL)
        if configured_model().available:
            return
        if Path(settings.VAR_DIR).resolve() not in model_dir.resolve().parents:
            self.stderr.write(f"OMNIPATH_MODEL={model_dir}: {configured_model().problem}; analyses will fail")
            return
        self.stdout.write(f"Creating a tiny random OmniPath checkpoint in {model_dir} (once; demo weights)…")
        subprocess.run([sys.executable, "-m", "inference", "init-tiny", str(model_dir)], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)

    def _run(self, host: str, port: int) -> None:
        python = sys.executable
        gpu_env = {
            **os.environ, "OMNIPATH_MODEL": str(settings.OMNIPATH_MODEL), "HF_HUB_OFFLINE": "1",
            "PATHDESK_FEATURE_STORE": os.environ.get("PATHDESK_FEATURE_STORE", str(Path(settings.VAR_DIR) / "features")),
        }
        processes = [
            subprocess.Popen([python, "-m", "uvicorn", "webapp.asgi:application", "--host", host, "--port", str(port)]),
            subprocess.Popen(
                [python, "-m", "celery", "-A", "webapp", "worker", "-Q", "ingest", "-c", "1", "-l", "INFO",
                 "--without-gossip", "--without-mingle"]
            ),
            # The GPU queue on this machine's CPU (or GPU): one model process, kept warm.
            subprocess.Popen(
                [python, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu", "-c", "1", "--pool", "prefork",
                 "-n", "gpu@%h", "-l", "INFO", "--without-gossip", "--without-mingle"],
                env=gpu_env,
            ),
        ]
        # SIGTERM (`kill`, a container stop) ends the demo like Ctrl-C: the children are stopped, not orphaned.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while all(p.poll() is None for p in processes):
                time.sleep(0.5)
            self.stderr.write("a demo process exited; stopping the others")
        except KeyboardInterrupt:
            self.stdout.write("\nstopping…")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
