"""The nightly full archive and its rotation (see hypervision.backup).

Celery beat sends `hypervision.jobs.backup.nightly_backup` once a day at
HV_BACKUP_HOUR:HV_BACKUP_MINUTE (UTC) to the `jobs` queue. The worker that consumes that
queue needs the PostgreSQL client programs (HV_PG_BIN_DIR) and the backup directory.

The task acknowledges its message when it starts, unlike the ingestion tasks: a dump may
take longer than the broker's visibility timeout, after which Redis would hand an
unacknowledged message to a second worker and start a second dump. A night whose backup
failed is not retried in a loop; the failure is logged, and the next night runs again.
"""

from __future__ import annotations

import logging

from celery.schedules import crontab

from hypervision import backup
from hypervision.celery_app import app
from hypervision.settings import get_settings

logger = logging.getLogger(__name__)


@app.task(name="hypervision.jobs.backup.nightly_backup", acks_late=False)
def nightly_backup() -> str:
    """Write a full archive, then delete the archives the rotation no longer keeps."""
    settings = get_settings()
    archive = backup.run_backup(settings, source="job", log=logger.info)
    removed = backup.rotate(settings, log=logger.info)
    logger.info("backup %s written; %d old archive(s) removed", archive.name, len(removed))
    return archive.name


_settings = get_settings()
SCHEDULE = {
    "nightly-backup": {
        "task": "hypervision.jobs.backup.nightly_backup",
        "schedule": crontab(hour=_settings.backup_hour, minute=_settings.backup_minute),
    },
}
