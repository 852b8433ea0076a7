"""DS5220 - Problem Set 4 (Problems 2 and 3) - Farah

I did the coding part as a plain python module instead of the notebooks
(I work in VS Code). Both networks are in this file:

  * MNISTClassifierMLP - Problem 2, two-layer MLP 784 -> 128 -> 10
  * CNN                - Problem 3, conv(5x5, 10) -> pool -> conv(5x5, 20) -> dropout -> pool -> fc(320 -> 10)

Run ``python hw4_solution.py mlp`` or ``python hw4_solution.py cnn`` to train.

Problem 3 C) - number of parameters
-----------------------------------
CNN
  conv1 weights: 10 filters * 1 input channel * 5 * 5 = 250,  biases: 10
  conv2 weights: 20 filters * 10 input channels * 5 * 5 = 5000,  biases: 20
  fc weights: 320 * 10 = 3200,  biases: 10
  total = 250 + 10 + 5000 + 20 + 3200 + 10 = 8,490

MLP
  fc1 weights: 784 * 128 = 100,352,  biases: 128
  fc2 weights: 128 * 10 = 1280,  biases: 10
  total = 100,352 + 128 + 1280 + 10 = 101,770

So the CNN has ~12 times fewer parameters than the MLP (weight sharing in the
convolutions), even though it gets a better test accuracy.
"""
import sys

import torch
from torch import nn
import torch.nn.functional as F


class MNISTClassifierMLP(nn.Module):

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten(start_dim=1)
        self.hidden = nn.Linear(28 * 28, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        x = self.flatten(x)              # [B, 784]
        x = F.relu(self.hidden(x))       # [B, 128]
        return F.log_softmax(self.out(x), dim=1)


class CNN(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.drop = nn.Dropout2d(0.5)
        self.fc = nn.Linear(320, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))              # [B, 10, 12, 12]
        x = F.relu(F.max_pool2d(self.drop(self.conv2(x)), 2))   # [B, 20, 4, 4]
        x = x.flatten(start_dim=1)                              # [B, 320]
        return F.log_softmax(self.fc(x), dim=1)


def make_optimizer(model, lr):
    # Adam worked best for the MLP, for the CNN plain SGD with momentum was better
    if isinstance(model, CNN):
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=lr)


def train_one_epoch(train_loader, model, device, optimizer, log_interval, epoch):
    model.train()
    losses = []
    counter = []
    num_correct_train = 0
    for i, (img, label) in enumerate(train_loader):
        img, label = img.to(device), label.to(device)

        optimizer.zero_grad()
        output = model(img)
        loss = F.nll_loss(output, label)
        loss.backward()
        optimizer.step()

        num_correct_train += (output.argmax(dim=1) == label).sum().item()

        if (i + 1) % log_interval == 0:
            losses.append(loss.item())
            counter.append((i * train_loader.batch_size) + img.size(0) + epoch * len(train_loader.dataset))

    return losses, counter, num_correct_train


def test_one_epoch(test_loader, model, device):
    model.eval()
    test_loss = 0
    num_correct = 0
    with torch.no_grad():
        for img, label in test_loader:
            img, label = img.to(device), label.to(device)
            output = model(img)
            test_loss += F.nll_loss(output, label, reduction='sum').item()
            num_correct += (output.argmax(dim=1) == label).sum().item()
    test_loss /= len(test_loader.dataset)
    return test_loss, num_correct


def main(which='mlp'):
    from torchvision import datasets, transforms

    DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
    seed = 1234
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)

    # hyperparameters from the handout
    batch_size = 64
    lr = 0.01
    max_epochs = 10
    gamma = 0.95
    log_interval = 100

    transform = transforms.Compose([transforms.ToTensor()])
    train_data = datasets.MNIST('data', train=True, download=True, transform=transform)
    test_data = datasets.MNIST('data', train=False, download=True, transform=transform)
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_data, batch_size=batch_size, shuffle=False)

    model = (CNN() if which == 'cnn' else MNISTClassifierMLP()).to(DEVICE)
    print(model)
    print('params:', sum(p.numel() for p in model.parameters() if p.requires_grad))
    optimizer = make_optimizer(model, lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)

    train_correct, test_correct = [], []
    for epoch in range(max_epochs):
        _, _, n_train = train_one_epoch(train_loader, model, DEVICE, optimizer, log_interval, epoch)
        test_loss, n_test = test_one_epoch(test_loader, model, DEVICE)
        scheduler.step()
        train_correct.append(n_train)
        test_correct.append(n_test)
        print(f'epoch {epoch}: test loss {test_loss:.4f}')

    print(f"Train accuracy: {train_correct[-1] / len(train_loader.dataset)}")
    print(f"Test accuracy: {test_correct[-1] / len(test_loader.dataset)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else 'mlp')
