// Progressive enhancement only: every action works without this script.
// Expiry countdowns: <time data-countdown datetime="…"> shows the time left, updated each minute.
(function () {
  'use strict';
  function left(iso) {
    var ms = Date.parse(iso) - Date.now();
    if (isNaN(ms)) { return null; }
    if (ms <= 0) { return 'expired'; }
    var minutes = Math.floor(ms / 60000);
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    if (days > 0) { return days + ' d ' + hours + ' h left'; }
    if (hours > 0) { return hours + ' h ' + (minutes % 60) + ' min left'; }
    return Math.max(minutes, 1) + ' min left';
  }
  function tick() {
    var nodes = document.querySelectorAll('time[data-countdown]');
    for (var i = 0; i < nodes.length; i++) {
      var text = left(nodes[i].getAttribute('datetime'));
      if (text) { nodes[i].textContent = text; }
    }
  }
  tick();
  window.setInterval(tick, 60000);
}());
