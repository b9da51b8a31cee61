import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  composeDependencies,
  composeFileFacts,
  dependenciesByService,
  parseDependsOnConditions,
  resolveComposePath,
  servicesWithoutContainers,
  serviceWithoutContainerWarning,
} from '../../src/core/compose-file.js';
import { environmentFilesOf, parseDependsOnLabel } from '../../src/pipeline/discover.js';

const doc = (lines: string[]): unknown => parseYaml(lines.join('\n'), { merge: true });

describe('composeFileFacts', () => {
  it('reads services: profiles, scale, env_file (all forms), extends.file and depends_on conditions', () => {
    const facts = composeFileFacts(
      doc([
        'include:',
        '  - services/db.yaml',
        '  - path: [other/compose.yaml, other/override.yaml]',
        '    project_directory: other',
        '    env_file: other.env',
        '  - {}',
        'services:',
        '  app:',
        '    image: x',
        '    env_file: app.env',
        '    depends_on:',
        '      db: {condition: service_healthy}',
        '      init: {condition: service_completed_successfully}',
        '      cache: {}',
        '    links: [db:database]',
        '  debug:',
        '    image: x',
        '    profiles: [debug, tools]',
        '    env_file:',
        '      - a.env',
        '      - path: optional.env',
        '        required: false',
        '    extends: {file: common.yaml, service: base}',
        '  worker:',
        '    image: x',
        '    deploy: {replicas: 0}',
        '    depends_on: [app]',
        '    network_mode: service:app',
        '    extends: {service: app}',
      ]),
    );
    assert.deepEqual(facts.includes, [
      { paths: ['services/db.yaml'], projectDirectory: undefined, envFiles: [] },
      {
        paths: ['other/compose.yaml', 'other/override.yaml'],
        projectDirectory: 'other',
        envFiles: ['other.env'],
      },
    ]);
    const [app, debug, worker] = facts.services;
    assert.deepEqual(app, {
      name: 'app',
      profiles: [],
      scale: undefined,
      // db is named twice (depends_on and links): the strictest condition wins.
      dependencies: [
        { service: 'db', condition: 'service_healthy' },
        { service: 'init', condition: 'service_completed_successfully' },
        { service: 'cache', condition: 'service_started' },
      ],
      envFiles: [{ path: 'app.env', required: true }],
      extendsFile: undefined,
    });
    assert.deepEqual(debug?.profiles, ['debug', 'tools']);
    assert.deepEqual(debug?.envFiles, [
      { path: 'a.env', required: true },
      { path: 'optional.env', required: false },
    ]);
    assert.equal(debug?.extendsFile, 'common.yaml');
    assert.equal(worker?.scale, 0);
    assert.deepEqual(worker?.dependencies, [{ service: 'app', condition: 'service_started' }]);
    assert.equal(worker?.extendsFile, undefined, 'extends within the same file names no file');
  });

  it('reads format 1 (services at the top level) and ignores what is not a mapping', () => {
    const facts = composeFileFacts(doc(['web:', '  image: x', '  links: [db]', 'db:', '  image: y']));
    assert.deepEqual(
      facts.services.map((s) => [s.name, s.dependencies.map((d) => d.service)]),
      [
        ['web', ['db']],
        ['db', []],
      ],
    );
    assert.deepEqual(composeFileFacts('just text'), { services: [], includes: [] });
    assert.deepEqual(composeFileFacts(doc(['version: "3"', 'volumes: {a: {}}'])).services, []);
  });

  it('composeDependencies keeps its service → names shape', () => {
    assert.deepEqual(
      composeDependencies(
        doc(['services:', '  a: {depends_on: {b: {condition: service_healthy}}}', '  b: {}']),
      ),
      new Map([
        ['a', ['b']],
        ['b', []],
      ]),
    );
  });
});

describe('parseDependsOnConditions (v2 label)', () => {
  it('reads svc:condition:restart entries; unknown or missing conditions are service_started', () => {
    assert.deepEqual(
      parseDependsOnConditions(
        'init:service_completed_successfully:false,db:service_healthy:true,x,y:weird:false',
      ),
      [
        { service: 'init', condition: 'service_completed_successfully' },
        { service: 'db', condition: 'service_healthy' },
        { service: 'x', condition: 'service_started' },
        { service: 'y', condition: 'service_started' },
      ],
    );
    assert.deepEqual(parseDependsOnConditions(''), []);
  });
});

describe('dependenciesByService', () => {
  it('merges declarations of a service across files, the strictest condition per dependency', () => {
    const base = composeFileFacts(doc(['services:', '  app: {depends_on: [db]}'])).services;
    const override = composeFileFacts(
      doc(['services:', '  app: {depends_on: {db: {condition: service_healthy}, cache: {}}}']),
    ).services;
    assert.deepEqual(dependenciesByService([...base, ...override]).get('app'), [
      { service: 'db', condition: 'service_healthy' },
      { service: 'cache', condition: 'service_started' },
    ]);
  });
});

describe('resolveComposePath', () => {
  it('resolves relative paths against the base directory and keeps absolute ones', () => {
    assert.equal(resolveComposePath('config/app.env', '/srv/app'), '/srv/app/config/app.env');
    assert.equal(resolveComposePath('../shared/db.yaml', '/srv/app'), '/srv/shared/db.yaml');
    assert.equal(resolveComposePath('/etc/app.env', '/srv/app'), '/etc/app.env');
  });

  it('gives up on what needs Compose’s environment or is not a local file', () => {
    for (const p of [
      '${ENV_FILE}',
      '$X/a.env',
      '~/app.env',
      '',
      'oci://docker.io/x/y',
      'https://x/y.git',
      'git@x:y',
    ]) {
      assert.equal(resolveComposePath(p, '/srv/app'), undefined, p);
    }
  });
});

describe('servicesWithoutContainers', () => {
  it('lists declared services that have no container, with what explains it', () => {
    const facts = composeFileFacts(
      doc([
        'services:',
        '  app: {image: x}',
        '  debug: {image: x, profiles: [debug]}',
        '  worker: {image: x, scale: 0}',
        '  gone: {image: x}',
      ]),
    ).services;
    const override = composeFileFacts(doc(['services:', '  debug: {environment: {A: b}}'])).services;
    const absent = servicesWithoutContainers([...facts, ...override], new Set(['app']));
    assert.deepEqual(absent, [
      { service: 'debug', profiles: ['debug'], scale: undefined },
      { service: 'worker', profiles: [], scale: 0 },
      { service: 'gone', profiles: [], scale: undefined },
    ]);
    assert.deepEqual(absent.map(serviceWithoutContainerWarning), [
      'service debug has no container (in profile debug, not active): it is not running and nothing of it is backed up',
      'service worker has no container (scaled to 0): it is not running and nothing of it is backed up',
      'service gone has no container (never created, or removed): it is not running and nothing of it is backed up',
    ]);
  });
});

describe('discovery label helpers', () => {
  it('environmentFilesOf reads the comma-separated label and the indexed form, nothing else', () => {
    assert.deepEqual(
      environmentFilesOf({
        'com.docker.compose.project.environment_file': '/srv/a.env,/srv/b.env',
        'com.docker.compose.project.environment_file.0': 'c.env',
        'com.docker.compose.project.environment_file_x': '/nope',
        'com.docker.compose.project': 'p',
      }),
      ['/srv/a.env', '/srv/b.env', 'c.env'],
    );
    assert.deepEqual(environmentFilesOf({}), []);
  });

  it('parseDependsOnLabel keeps returning service names', () => {
    assert.deepEqual(
      parseDependsOnLabel('db:service_healthy:false,init:service_completed_successfully:false'),
      ['db', 'init'],
    );
  });
});
