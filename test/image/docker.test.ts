import { join } from 'node:path';
import { describe } from 'node:test';
import { dockerArchive } from '../../scripts/image/build.ts';
import { imageBuildUnavailable, testImageName } from '../helpers/berth-image.ts';
import { dockerUnavailable, startDockerEngine } from '../helpers/dockerd.ts';
import { missingCommands } from '../helpers/tools.ts';
import { containerScenario } from './container-scenario.ts';

describe('the image in Docker Engine', { skip: imageBuildUnavailable() || dockerUnavailable() || missingCommands('skopeo'), timeout: 900_000 }, () => {
  containerScenario(async () => {
    const engine = await startDockerEngine();
    return {
      cli: (args) => engine.docker(args),
      async load(image, temp) {
        // Debian's Docker (20.10) loads no OCI archive: `berth copy` makes a docker-archive of it (npm run image -- --load docker does the same).
        const archive = join(temp, 'docker.tar');
        await dockerArchive(image.output, testImageName, archive);
        await engine.docker(['load', '--input', archive]);
        return testImageName;
      },
      // The test engine has no bridge network: Berth shares the host's network (which makes Docker ignore -p), on a port of its own.
      networkFlags: (port) => ['--network', 'host', '--env', `BERTH_LISTEN=127.0.0.1:${port}`],
      runFlags: [],
      async stop() {
        await engine.stop().catch((error: unknown) => {
          // dockerd may leave its netns mount busy for a moment; the temp dir goes with the machine.
          if ((error as NodeJS.ErrnoException).code !== 'EBUSY') throw error;
        });
      },
    };
  }, 'docker');
});
