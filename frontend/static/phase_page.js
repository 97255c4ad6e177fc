// The phase page: the phase diagram alone (phase.js draws it), loaded once.
import { pageData } from "./common.js";
import { mountPhase } from "./phase.js";

const reload = mountPhase(pageData().study_id);
reload().then(() => { document.getElementById("phase").dataset.ready = "true"; });
