"""twistd plugins: papertrader-master, papertrader-worker, papertrader-cluster."""

from twisted.application.service import ServiceMaker

papertrader_master = ServiceMaker(
    "PaperTrader master", "papertrader.master.service", "PaperTrader master server.", "papertrader-master")
papertrader_worker = ServiceMaker(
    "PaperTrader worker", "papertrader.worker.service", "PaperTrader worker server.", "papertrader-worker")
papertrader_cluster = ServiceMaker(
    "PaperTrader cluster", "papertrader.cluster", "A PaperTrader master and N workers in one process.",
    "papertrader-cluster")
