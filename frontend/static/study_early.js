// The study page's first deferred script (it blocks no paint): it runs as soon as the page is
// parsed, before plotly.js, so the page's first two requests (the study and the charts' summary,
// without the slow statistics) are on their way while Plotly compiles. study.js takes them
// (window.INITLAB_EARLY) once.
(() => {
  const studyId = document.currentScript?.dataset.studyId;
  if (!studyId) return;
  let token = null;
  try { token = localStorage.getItem("initlab.apiToken"); } catch { /* storage disabled */ }
  const headers = { Accept: "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  window.INITLAB_EARLY = {
    study: fetch(`/api/studies/${studyId}`, { headers }),
    summary: fetch(`/api/studies/${studyId}/summary?stats=false`, { headers }),
  };
})();
