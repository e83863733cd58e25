"""A torchvision-format teacher for the transfer tests: torchvision.models.resnet18() with a seeded
random initialisation (no download), its state_dict saved with torch.save, and its pooled pre-fc
features (eval mode) of a fixed input, for comparison with stcnet's teacher.

usage: torchvision_teacher.py OUT_JSON OUT_PTH
"""
import json
import sys

import torch
import torchvision

torch.manual_seed(0)
model = torchvision.models.resnet18()
# Non-trivial BatchNorm statistics, so eval mode is really exercised.
with torch.no_grad():
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
model.eval()
torch.save(model.state_dict(), sys.argv[2])
x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32).mul(0.01).sin()
with torch.no_grad():
    features = torch.flatten(model.avgpool(model.layer4(model.layer3(model.layer2(model.layer1(
        model.maxpool(model.relu(model.bn1(model.conv1(x))))))))), 1)
with open(sys.argv[1], 'w') as f:
    json.dump({'shape': list(features.shape), 'data': features.flatten().tolist()}, f)
