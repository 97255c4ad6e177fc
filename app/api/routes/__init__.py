"""One module per resource; ``ROUTERS`` in the order create_app includes them."""

from app.api.routes import (catalog, dashboard, diagnostics, events, exports, failures, health, pages, phase, runs,
                            studies, theory, workers)

ROUTERS = [module.router for module in (studies, runs, catalog, health, pages, dashboard, events, diagnostics,
                                        failures, exports, theory, phase, workers)]
