// A QC report (qc.json of a `qc` step): the rating, pass or fail, each check with its
// severity and message, and the black, frozen and silent ranges drawn on a timeline.

import { h, replace, seconds } from '../dom.js';

const RATINGS = {
  0: 'unreadable, corrupt or no stream', 1: 'silent audio only', 2: 'audio only',
  3: 'video only', 4: 'video with silent audio', 5: 'video with audio',
};
const TIMELINE = ['black', 'freeze', 'silence', 'decode'];

export function qcReport(url) {
  const section = h('section', { class: 'card qc', 'aria-labelledby': 'qc-title' }, h('h2', { id: 'qc-title' }, 'Quality report'), h('p', {}, 'Loading…'));
  fetch(url).then((r) => r.json()).then((report) => {
    const duration = report.checks.find((c) => c.name === 'streams')?.value?.duration || 0;
    replace(section,
      h('h2', { id: 'qc-title' }, 'Quality report'),
      h('p', { class: 'verdict' },
        h('span', { class: `badge s-${report.passed ? 'succeeded' : 'failed'}` }, report.passed ? 'passed' : 'not passed'),
        ` rating ${report.rating} of 5: ${RATINGS[report.rating] ?? ''}`),
      duration ? timeline(report.checks, duration) : null,
      h('table', {},
        h('caption', { class: 'visually-hidden' }, 'Checks'),
        h('thead', {}, h('tr', {}, ['Check', 'Severity', 'Finding'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, report.checks.map((check) => h('tr', { 'data-check': check.name },
          h('th', { scope: 'row' }, check.name),
          h('td', {}, h('span', { class: `badge q-${check.status}` }, check.status)),
          h('td', {}, check.message))))));
  }).catch((e) => replace(section, h('h2', { id: 'qc-title' }, 'Quality report'), h('p', { class: 'error' }, `The report could not be read: ${e.message}`)));
  return section;
}

function timeline(checks, duration) {
  const lanes = TIMELINE.map((name) => checks.find((c) => c.name === name)).filter((c) => c && (c.ranges || []).length);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { style: null, class: 'tick', 'data-at': f }, seconds(f * duration)));
  const figure = h('figure', { class: 'timeline' },
    h('figcaption', {}, lanes.length ? `Where the findings are, over ${seconds(duration)}` : `No black, frozen or silent ranges over ${seconds(duration)}`),
    lanes.map((check) => h('div', { class: 'lane' },
      h('span', { class: 'lane-name' }, check.name),
      h('div', { class: 'track', role: 'img', 'aria-label': `${check.name}: ${check.ranges.map((r) => `${seconds(r.start)} to ${seconds(r.end)}`).join(', ')}` },
        check.ranges.map((r) => {
          const bar = h('span', { class: `range q-${check.status}`, title: `${seconds(r.start)}–${seconds(r.end)}` });
          // Positions are data, set as properties (the content security policy refuses inline style attributes).
          bar.style.left = `${(100 * r.start) / duration}%`;
          bar.style.width = `${Math.max(0.5, (100 * (r.end - r.start)) / duration)}%`;
          return bar;
        })))),
    h('div', { class: 'ticks' }, ticks));
  return figure;
}
